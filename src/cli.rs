//! The command line, as clap definitions. Flags mirror `docker buildx build` where the two
//! overlap, so a CI script can switch builders by changing the program name.
//!
//! Flags that later work will implement are parsed already, so a user gets a clear
//! "not supported yet" error instead of a silently ignored option (see `unsupported`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "strata", version, about = "Build OCI images from Dockerfiles, without a daemon")]
pub struct Cli {
    /// The store directory (images, layers, cache). Default: $XDG_DATA_HOME/strata, or
    /// /var/lib/strata for root.
    #[arg(long, global = true, env = "STRATA_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build an image from a Dockerfile and a context directory.
    Build(Box<BuildArgs>),
    /// Push an image from the store to its registry.
    Push(PushArgs),
    /// Fetch an image from its registry into the store.
    Pull(PullArgs),
    /// List the images in the store.
    Images(ImagesArgs),
    /// Print an image's manifest and config.
    Inspect(InspectArgs),
    /// Run an image from the store in the sandbox (its changes are discarded when it exits).
    Run(RunArgs),
    /// Make an image from a root filesystem (a directory or a tar archive), as `docker import`.
    Import(ImportArgs),
    /// Give an image in the store another name.
    Tag(TagArgs),
    /// Show which buildpack group passes detection for an app directory, and its build plan.
    Detect(crate::commands::buildpacks::DetectArgs),
    /// Put a buildpack-built image on another run image without rebuilding it.
    Rebase(crate::commands::buildpacks::RebaseArgs),
    /// Remove names from the store (the content stays until garbage collection).
    Rmi(RmiArgs),
    /// Log in to a registry (saved in Docker's config.json, as `docker login` does).
    Login(LoginArgs),
    /// Log out from a registry.
    Logout(LogoutArgs),
    /// Tools for looking inside strata.
    #[command(subcommand)]
    Debug(DebugCommand),
    /// Verify every blob, name, cache record and snapshot in the store; --repair removes what
    /// is broken.
    Fsck(FsckArgs),
    /// Remove build cache, unused cache mounts and everything no image or cache record uses.
    Prune(PruneArgs),
    /// The store as a whole.
    #[command(subcommand)]
    System(SystemCommand),
}

#[derive(Debug, Args)]
pub struct FsckArgs {
    /// Remove what is broken (never anything valid).
    #[arg(long)]
    pub repair: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Only remove cache used longer ago than this (`until=24h`).
    #[arg(long = "filter", value_name = "until=DURATION")]
    pub filter: Vec<String>,
    /// Keep this much build cache (e.g. 10GB), removing the least recently used first.
    #[arg(long = "keep-storage", value_name = "SIZE")]
    pub keep_storage: Option<String>,
    /// Show what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (strata never asks; accepted for docker compatibility).
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show the store's disk usage.
    Df,
    /// The same as `strata prune`.
    Prune(PruneArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// tty when stderr is a terminal, plain otherwise.
    Auto,
    Plain,
    Tty,
    Json,
    /// Print nothing but errors.
    Quiet,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The build context: a directory (without a Dockerfile: an app built with buildpacks), `-`
    /// (a tar archive, or a Dockerfile alone, on standard input) or a git URL
    /// (`https://host/repo.git#ref:dir`, `git@host:repo.git`).
    #[arg(value_name = "CONTEXT")]
    pub context: PathBuf,
    /// Name (and push target) of the image; may be given several times.
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    pub tags: Vec<String>,
    /// The Dockerfile (default: CONTEXT/Dockerfile; `-` reads it from standard input).
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Set a build-time variable (`KEY=VALUE`, or `KEY` to take it from the environment).
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Build this stage instead of the last one.
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Do not use the cache for these stages.
    #[arg(long = "no-cache-filter", value_name = "STAGE")]
    pub no_cache_filter: Vec<String>,
    /// Always ask the registry for base images, even if the store has them.
    #[arg(long)]
    pub pull: bool,
    /// Push the image after building it (every -t name).
    #[arg(long)]
    pub push: bool,
    /// How to show progress.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
    /// How many steps may run at once (default: the number of CPUs, at least 4).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Grant an entitlement: network.host, security.insecure.
    #[arg(long = "allow", value_name = "ENTITLEMENT")]
    pub allow: Vec<String>,
    /// Add a label to the image (`KEY=VALUE`).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Write the image ID (its config digest) to this file.
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Print only the image ID when done.
    #[arg(short = 'q', long)]
    pub quiet: bool,

    // --- parsed now, implemented by later work -------------------------------------------
    /// Target platform(s), e.g. linux/amd64.
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Explain, for each step, whether it came from the cache and, if not, which input changed
    /// since its last build (a file, a build arg, the step before it).
    #[arg(long)]
    pub explain: bool,
    /// Lint the Dockerfile without building.
    #[arg(long)]
    pub check: bool,
    /// A secret for RUN --mount=type=secret (`id=NAME,src=FILE` or `id=NAME,env=VAR`).
    #[arg(long, value_name = "SPEC")]
    pub secret: Vec<String>,
    /// An SSH agent socket or keys for RUN --mount=type=ssh (`default=$SSH_AUTH_SOCK`).
    #[arg(long, value_name = "SPEC")]
    pub ssh: Vec<String>,
    /// Output destination (`type=image|registry|oci|docker|local|tar,...`).
    #[arg(short = 'o', long, value_name = "SPEC")]
    pub output: Vec<String>,
    /// Export the build cache (`type=registry,ref=...`).
    #[arg(long = "cache-to", value_name = "SPEC")]
    pub cache_to: Vec<String>,
    /// Import a build cache (`type=registry,ref=...`).
    #[arg(long = "cache-from", value_name = "SPEC")]
    pub cache_from: Vec<String>,
    /// Write build result metadata (JSON) to this file.
    #[arg(long = "metadata-file", value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// Squash the new layers into one.
    #[arg(long)]
    pub squash: bool,
    /// Layer compression: gzip, zstd, uncompressed.
    #[arg(long, value_name = "ALGORITHM")]
    pub compression: Option<String>,
    /// Compression level (gzip 0-9, zstd 1-22).
    #[arg(long = "compression-level", value_name = "N")]
    pub compression_level: Option<i32>,
    /// Recompress the base image's layers too (they keep their compression otherwise).
    #[arg(long = "force-compression")]
    pub force_compression: bool,
    /// Load the image into Docker.
    #[arg(long)]
    pub load: bool,

    /// Buildpack options (used when CONTEXT has no Dockerfile).
    #[command(flatten)]
    pub buildpacks: crate::commands::buildpacks::BuildpackFlags,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The image to push, by the name it has in the store.
    pub image: String,
    /// Push under this name instead.
    #[arg(value_name = "DESTINATION")]
    pub destination: Option<String>,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// The image to fetch (`busybox`, `127.0.0.1:5000/x:1`, `name@sha256:…`).
    pub image: String,
    /// Print only the result.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Print only digests.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The image, by name or manifest digest.
    pub image: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Remove the container's changes when it exits (always the case: strata keeps no
    /// containers; accepted for docker compatibility).
    #[arg(long)]
    pub rm: bool,
    /// Set an environment variable (`NAME=VALUE`, or `NAME` to pass strata's own value).
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Run as this user (`name`, `uid`, `uid:gid`) instead of the image's User.
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// `host` (default) or `none` (only loopback).
    #[arg(long)]
    pub network: Option<String>,
    /// The hostname inside (default: the image's short digest).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Run this instead of the image's Entrypoint (its Cmd is dropped too, as docker does).
    #[arg(long, value_name = "PATH")]
    pub entrypoint: Option<String>,
    /// The image, by name or digest.
    pub image: String,
    /// The command, replacing the image's Cmd.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A directory, or a tar archive (plain, gzip or zstd), holding the root filesystem.
    pub rootfs: PathBuf,
    /// The name of the new image.
    #[arg(short = 't', long = "tag", required = true)]
    pub tags: Vec<String>,
    /// Apply Dockerfile-style config changes (`ENV PATH=/bin`, `CMD ["/bin/sh"]`), as docker import --change.
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    pub changes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The user name.
    #[arg(short, long)]
    pub username: Option<String>,
    /// The password (insecure: prefer --password-stdin).
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from stdin.
    #[arg(long)]
    pub password_stdin: bool,
    /// The registry (default: Docker Hub).
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry (default: Docker Hub).
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Print a Dockerfile's syntax tree in BuildKit's parser test format.
    Parse {
        /// The Dockerfile.
        file: PathBuf,
    },
}
