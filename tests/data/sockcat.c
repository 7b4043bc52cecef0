/* sockcat SOCKET MESSAGE: connects to a Unix socket, sends MESSAGE, closes its sending side and
 * prints what comes back. Compiled statically by the SSH forwarding tests (busybox has no Unix
 * socket client). */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: sockcat SOCKET MESSAGE\n"); return 2; }
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, argv[1], sizeof addr.sun_path - 1);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) { perror("connect"); return 1; }
    if (write(fd, argv[2], strlen(argv[2])) < 0) { perror("write"); return 1; }
    shutdown(fd, SHUT_WR);
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) fwrite(buf, 1, (size_t)n, stdout);
    return n < 0;
}
