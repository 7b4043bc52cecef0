//! End to end: deletions, a replaced directory, hard links, symlinks, special modes and a fifo
//! survive the trip build → push → `skopeo copy` to an OCI layout → `umoci unpack`. Other tools
//! apply strata's layers here, so a wrong whiteout or link entry shows up as a wrong file tree.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::process::Command;

use common::{Env, blob_path, layer_digests, layer_entries, run, skopeo, tool};

const DOCKERFILE: &str = r#"FROM {BASE}
RUN mkdir -p /data/old/sub && echo a > /data/old/a && echo b > /data/old/sub/b && echo gone > /gone \
 && echo data > /hl-a && ln /hl-a /hl-b && ln /hl-a /hl-c && mkdir /keepdir && echo k > /keepdir/k \
 && echo f > /was-file && mkdir -p /was-dir/sub && echo x > /was-dir/sub/x
RUN rm /etc/group /gone /hl-c && rm -rf /data && mkdir /data && touch /data/new \
 && ln -s /etc/passwd /abs-link && ln -s ../etc/passwd /bin/rel-link \
 && cp /bin/busybox /suid && chmod 4755 /suid && chmod 2750 /keepdir && chmod 1777 /data \
 && mkfifo /fifo && chmod 700 /root \
 && rm /was-file && mkdir /was-file && echo in > /was-file/inside && rm -rf /was-dir && echo now-a-file > /was-dir
"#;

#[test]
fn whiteouts_links_and_modes_survive_push_and_unpack() {
    let env = Env::new();
    let name = format!("{}/whiteouts:1", env.registry.host);
    let ctx = env.context("whiteouts", &[("Dockerfile", DOCKERFILE)]);
    env.build(&ctx, &name, &["--push"]).ok();

    // The last layer must say "deleted" the only way OCI layers can: whiteout entries.
    let image = env.inspect(&name);
    let layers = layer_digests(&image);
    assert_eq!(layers.len(), 3, "base + 2 RUN layers");
    let last = layer_entries(&blob_path(&env.root, &layers[2]));
    for wh in [".wh.gone", "etc/.wh.group", ".wh.hl-c"] {
        assert!(last.iter().any(|e| e == wh), "no whiteout {wh} in the last layer: {last:?}");
    }
    assert!(
        last.iter().any(|e| e == "data/.wh..wh..opq") || last.iter().any(|e| e == "data/.wh.old"),
        "the replaced /data needs an opaque whiteout or a whiteout of data/old: {last:?}"
    );

    // Another implementation's view of the pushed image.
    let oci = env.path("oci");
    let oci_ref = format!("oci:{}:t", oci.display());
    skopeo(&["copy", "--quiet", "--src-tls-verify=false", &format!("docker://{name}"), &oci_ref]).ok();
    let bundle = env.path("bundle");
    run(Command::new(tool("umoci", "umoci")).args(["unpack", "--image", &format!("{}:t", oci.display())]).arg(&bundle))
        .ok();
    let rootfs = bundle.join("rootfs");
    let lstat =
        |p: &str| fs::symlink_metadata(rootfs.join(p)).unwrap_or_else(|e| panic!("/{p} in the unpacked image: {e}"));
    let absent = |p: &str| assert!(fs::symlink_metadata(rootfs.join(p)).is_err(), "/{p} should be gone");

    // Deleted: a base-image file and files of an earlier layer.
    absent("etc/group");
    absent("gone");
    absent("hl-c");
    assert_eq!(
        fs::read_to_string(rootfs.join("etc/passwd")).unwrap().lines().next(),
        Some("root:x:0:0:root:/root:/bin/sh")
    );
    assert!(lstat("bin/busybox").is_file());

    // The replaced directory: only the new file, with the new mode.
    let data: Vec<String> =
        fs::read_dir(rootfs.join("data")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(data, ["new"], "old contents of /data must be gone");
    assert_eq!(lstat("data").permissions().mode() & 0o7777, 0o1777);

    // Hard links: the two that remain are one inode with two names.
    let (a, b) = (lstat("hl-a"), lstat("hl-b"));
    assert_eq!(a.ino(), b.ino(), "hl-a and hl-b must be one file");
    assert_eq!(a.nlink(), 2);
    assert_eq!(fs::read_to_string(rootfs.join("hl-b")).unwrap(), "data\n");

    // Symlinks keep their targets verbatim, absolute and relative.
    assert!(lstat("abs-link").file_type().is_symlink());
    assert_eq!(fs::read_link(rootfs.join("abs-link")).unwrap().to_str(), Some("/etc/passwd"));
    assert_eq!(fs::read_link(rootfs.join("bin/rel-link")).unwrap().to_str(), Some("../etc/passwd"));
    assert_eq!(fs::read_link(rootfs.join("bin/sh")).unwrap().to_str(), Some("/bin/busybox"));

    // Modes: setuid file, setgid directory (its earlier content kept), private /root, sticky /tmp.
    let suid = lstat("suid");
    assert_eq!(suid.permissions().mode() & 0o7777, 0o4755);
    assert_eq!(suid.len(), lstat("bin/busybox").len());
    assert_eq!(lstat("keepdir").permissions().mode() & 0o7777, 0o2750);
    assert_eq!(fs::read_to_string(rootfs.join("keepdir/k")).unwrap(), "k\n");
    assert_eq!(lstat("root").permissions().mode() & 0o7777, 0o700);
    assert_eq!(lstat("tmp").permissions().mode() & 0o7777, 0o1777);

    // A file replaced by a directory, a directory replaced by a file.
    assert!(lstat("was-file").is_dir());
    assert_eq!(fs::read_to_string(rootfs.join("was-file/inside")).unwrap(), "in\n");
    assert!(lstat("was-dir").is_file());
    assert_eq!(fs::read_to_string(rootfs.join("was-dir")).unwrap(), "now-a-file\n");

    // A fifo stays a fifo.
    assert!(lstat("fifo").file_type().is_fifo(), "/fifo is {:?}", lstat("fifo").file_type());

    // Owners: everything here was made by root in the build.
    assert_eq!((suid.uid(), suid.gid()), (0, 0));
}
