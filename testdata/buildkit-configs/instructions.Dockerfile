FROM 127.0.0.1:5000/busybox:latest
MAINTAINER Jane <j@x.org>
ARG A=1 B
ENV LEG value with spaces
USER nobody
WORKDIR /owned/by/nobody
USER root
RUN ["echo", "exec", "form"]
ARG C=3
RUN echo shell
SHELL ["/bin/sh", "-ec"]
RUN echo with shell
VOLUME /data /other
VOLUME ["/json"]
STOPSIGNAL SIGKILL
HEALTHCHECK --interval=5s --retries=3 CMD wget -q localhost || exit 1
ONBUILD RUN echo triggered
ENTRYPOINT ["/bin/echo"]
EXPOSE 80 443/udp
ADD f.txt /added
COPY --link f.txt /linked
