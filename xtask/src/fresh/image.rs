//! The clean Debian 12 image of `cargo xtask fresh-check`: a debootstrap minbase root (its
//! tarball cached in target/fresh/ by date), imported into this host's Docker, plus only what a
//! fresh CI machine of this project's kind has before the project's own commands run.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{deps::DOCKER, util};

const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";

/// The apt sources of this machine kind (Debian's main, updates and security suites): the
/// LLVM 22 that bpf-linker builds against comes from bookworm-security.
const SOURCES: &str = "\
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

/// What a new machine of this kind has (the env notes' `machines/rust.md`, "On a new machine"):
/// a rustup toolchain with cargo (this host's default toolchain, mounted read-only, and the
/// rustup binary), gcc (with libc6-dev to link), CPython 3.11 with pip (Debian's here, without
/// its venv module), git and qemu-utils; ca-certificates for HTTPS. Nothing else: whatever
/// else the demo or the tests need, xtask must install.
pub const PREREQUISITES: &[&str] = &[
    "ca-certificates",
    "gcc",
    "libc6-dev",
    "python3",
    "python3-pip",
    "git",
    "qemu-utils",
];

/// This machine's own trust and pip settings, which a new machine of its kind has too: the
/// certificate authorities of its HTTPS egress (without them crates.io, PyPI and rustup fail
/// with "self-signed certificate in certificate chain") and pip's `cert` setting.
const LOCAL_CAS: &str = "/usr/local/share/ca-certificates";
const PIP_CONF: &str = "/etc/pip.conf";

/// The machine's environment variables that name that trust store (passed into the container
/// when set here, as CI's environment has them).
pub const TRUST_ENV: &[&str] = &[
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "PIP_CERT",
    "REQUESTS_CA_BUNDLE",
    "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
];

/// The rustup proxies a rustup install puts beside `rustup` in ~/.cargo/bin.
const PROXIES: &[&str] = &[
    "cargo",
    "cargo-clippy",
    "cargo-fmt",
    "clippy-driver",
    "rustc",
    "rustdoc",
    "rustfmt",
];

/// The PATH of a fresh machine's root shell (cargo's bin first, as rustup sets it).
pub const PATH: &str =
    "/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// This host's default rustup toolchain: its name and its directory.
pub struct Toolchain {
    pub name: String,
    pub dir: PathBuf,
}

impl Toolchain {
    pub fn of_host() -> Result<Self> {
        let default = util::output(
            Command::new("rustup").arg("default"),
            "fresh-check mounts this host's default rustup toolchain; set one with `rustup \
             default stable`",
        )?;
        let name = default
            .split_whitespace()
            .next()
            .context("`rustup default` printed nothing")?
            .to_owned();
        let home = std::env::var_os("RUSTUP_HOME").map_or_else(
            || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".rustup"),
            PathBuf::from,
        );
        let dir = home.join("toolchains").join(&name);
        let dir = fs::canonicalize(&dir)
            .with_context(|| format!("the default toolchain {} is missing", dir.display()))?;
        Ok(Self { name, dir })
    }

    /// Where the container sees it.
    pub fn mount_point(&self) -> String {
        format!("/root/.rustup/toolchains/{}", self.name)
    }
}

/// The script that turns the imported root into a fresh machine.
fn prepare_script(toolchain: &str) -> String {
    let proxies = PROXIES.join(" ");
    let packages = PREREQUISITES.join(" ");
    format!(
        "set -eu\n\
         rm -f /etc/apt/sources.list\n\
         mkdir -p {LOCAL_CAS}\n\
         if [ -d /mnt/ca ]; then cp /mnt/ca/*.crt {LOCAL_CAS}/ 2>/dev/null || true; fi\n\
         if [ -f /mnt/pip.conf ]; then cp /mnt/pip.conf {PIP_CONF}; fi\n\
         cat > /etc/apt/sources.list.d/debian.sources <<'EOF'\n{SOURCES}EOF\n\
         export DEBIAN_FRONTEND=noninteractive\n\
         apt-get update -q\n\
         apt-get install -y -q --no-install-recommends {packages}\n\
         update-ca-certificates\n\
         rm -rf /var/lib/apt/lists/*\n\
         install -D -m 0755 /mnt/rustup /root/.cargo/bin/rustup\n\
         for p in {proxies}; do ln -s rustup /root/.cargo/bin/$p; done\n\
         mkdir -p /root/.rustup/toolchains\n\
         printf 'version = \"12\"\\ndefault_toolchain = \"{toolchain}\"\\nprofile = \"default\"\\n\
         auto_self_update = \"disable\"\\n\\n[overrides]\\n' > /root/.rustup/settings.toml\n"
    )
}

/// FNV-1a, to name the image after what built it.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn docker() -> Command {
    Command::new(DOCKER)
}

fn image_exists(tag: &str) -> bool {
    util::probe(docker().args(["image", "inspect", tag])).is_some_and(|o| o.status.success())
}

/// The image (built today unless it exists): returns its tag.
pub fn ensure(dir: &Path, toolchain: &Toolchain) -> Result<String> {
    let date = util::output(Command::new("date").args(["-u", "+%F"]), "`date` must run")?;
    let date = date.trim();
    let script = prepare_script(&toolchain.name);
    let mut recipe = script.clone();
    for file in machine_files() {
        recipe.push_str(&fs::read_to_string(&file).unwrap_or_default());
    }
    let tag = format!("seam-fresh:{date}-{:08x}", fnv(&recipe) as u32);
    if image_exists(&tag) {
        eprintln!("xtask: fresh-check: image {tag} (built earlier today)");
        return Ok(tag);
    }
    let tarball = base_tarball(dir, date)?;
    let base = format!("seam-fresh-base:{date}");
    util::run(
        docker().arg("import").arg(&tarball).arg(&base),
        "docker import of the Debian root failed; see its message",
    )?;
    let rustup = util::which("rustup")
        .and_then(|p| fs::canonicalize(p).ok())
        .context("rustup not found on PATH or in ~/.cargo/bin")?;
    let builder = format!("seam-fresh-prepare-{}", std::process::id());
    let _ = util::probe(docker().args(["rm", "-f", &builder]));
    eprintln!(
        "xtask: fresh-check: installing a fresh machine's prerequisites: {} and rustup",
        PREREQUISITES.join(" ")
    );
    let mut prepare = docker();
    prepare
        .args(["run", "--name", &builder, "-v"])
        .arg(format!("{}:/mnt/rustup:ro", rustup.display()));
    if Path::new(LOCAL_CAS).is_dir() {
        prepare.arg("-v").arg(format!("{LOCAL_CAS}:/mnt/ca:ro"));
    }
    if Path::new(PIP_CONF).is_file() {
        prepare
            .arg("-v")
            .arg(format!("{PIP_CONF}:/mnt/pip.conf:ro"));
    }
    let prepared = util::run(
        prepare.args([&base, "sh", "-c", &script]),
        "preparing the fresh image failed (Debian's mirror must be reachable from a container)",
    )
    .and_then(|()| {
        util::run(
            docker()
                .args(["commit", "--change"])
                .arg(format!("ENV PATH={PATH}"))
                .args([&builder, &tag]),
            "docker commit of the prepared container failed",
        )
    });
    let _ = util::probe(docker().args(["rm", "-f", &builder]));
    prepared?;
    Ok(tag)
}

/// The machine files the image copies (their contents name the image too).
fn machine_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(LOCAL_CAS)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files.push(PathBuf::from(PIP_CONF));
    files
}

/// target/fresh/bookworm-minbase-DATE.tar, made by debootstrap unless today's exists.
fn base_tarball(dir: &Path, date: &str) -> Result<PathBuf> {
    let tarball = dir.join(format!("{SUITE}-minbase-{date}.tar"));
    if tarball.is_file() {
        return Ok(tarball);
    }
    for old in fs::read_dir(dir)?.flatten() {
        let name = old.file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!("{SUITE}-minbase-")) && name.ends_with(".tar") {
            let _ = fs::remove_file(old.path());
        }
    }
    let root = dir.join("rootfs");
    remove_root(&root)?;
    util::run(
        Command::new("debootstrap")
            .args(["--variant=minbase", SUITE])
            .arg(&root)
            .arg(MIRROR),
        "debootstrap failed; Debian's mirror must be reachable",
    )?;
    let partial = dir.join("rootfs.tar.partial");
    util::run(
        Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&partial)
            .arg("."),
        "could not tar the Debian root",
    )?;
    fs::rename(&partial, &tarball)?;
    remove_root(&root)?;
    Ok(tarball)
}

/// Removes a debootstrap root, refusing while anything is mounted inside it (a debootstrap
/// that died can leave /proc or /sys mounted there).
fn remove_root(root: &Path) -> Result<()> {
    if !root.exists() {
        return Ok(());
    }
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = format!("{}/", root.display());
    if let Some(mounted) = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .find(|m| m.starts_with(&prefix))
    {
        bail!(
            "{mounted} is mounted inside {}; unmount it and rerun",
            root.display()
        );
    }
    fs::remove_dir_all(root).with_context(|| format!("removing {}", root.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_name_follows_what_is_installed() {
        let a = prepare_script("stable-x86_64-unknown-linux-gnu");
        let b = prepare_script("1.95.0-x86_64-unknown-linux-gnu");
        assert_ne!(fnv(&a), fnv(&b));
        assert!(a.contains("apt-get install -y -q --no-install-recommends ca-certificates gcc"));
        assert!(a.contains("Suites: bookworm-security"), "{a}");
        assert!(
            a.contains("default_toolchain = \"stable-x86_64-unknown-linux-gnu\""),
            "{a}"
        );
    }
}
