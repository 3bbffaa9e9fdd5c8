//! Builds the eBPF probes (ebpf/) for bpfel-unknown-none and leaves one object per `[[bin]]` of
//! ebpf/Cargo.toml in OUT_DIR: `seam`, the production probes `src/kernel/probes/mod.rs` embeds
//! with `include_bytes_aligned!`, and `seam-floor`, the benchmark floor's empty programs that
//! only testkit builds embed (`src/testkit/bench/floor.rs`).
//!
//! Toolchain: `SEAM_BPF_TOOLCHAIN` names the rustup toolchain that builds the probes (set by
//! `cargo xtask setup`: `nightly` where rustup offers rust-src, else `debian-bpf`, Debian's rustc
//! linked into rustup, used with RUSTC_BOOTSTRAP=1).
use anyhow::{Context as _, anyhow};
use aya_build::Toolchain;

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=SEAM_BPF_TOOLCHAIN");
    let cargo_metadata::Metadata { packages, .. } = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("MetadataCommand::exec")?;
    let ebpf = packages
        .into_iter()
        .find(|p| p.name.as_str() == "seam-ebpf")
        .ok_or_else(|| anyhow!("seam-ebpf package not found"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?
        .as_str()
        .to_owned();
    let toolchain_name = std::env::var("SEAM_BPF_TOOLCHAIN").unwrap_or_else(|_| "nightly".into());
    let toolchain = match toolchain_name.as_str() {
        "nightly" => Toolchain::Nightly,
        other => Toolchain::Custom(other),
    };
    aya_build::build_ebpf(
        [aya_build::Package {
            name: ebpf.name.as_str(),
            root_dir: &root_dir,
            ..Default::default()
        }],
        toolchain,
    )
}
