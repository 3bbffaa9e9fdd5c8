//! `seam fleet-check`: compares fingerprints (`seam fingerprint`) from many nodes and says where
//! isolation guarantees diverge: a capability served by a worse tier (or not at all) than on
//! other nodes, missing BTF, kernels outside the declared policy, rules or probe object drift.
mod report;

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

use serde::Serialize;

pub(crate) use self::report::render_text;
use crate::kernel::{
    fingerprint::{Fingerprint, Live, SCHEMA},
    probes::{Capability, ProgramType, guarantee::Reduction},
};

/// Why the fingerprints could not be compared (exit 2).
#[derive(Debug, thiserror::Error)]
pub(crate) enum FleetError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}; pass fingerprint files or directories of *.json")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file is not a fingerprint.
    #[error("{path} is not a Seam fingerprint: {source}; produce it with `seam fingerprint`")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A fingerprint of a layout this build does not know.
    #[error("{path} has fingerprint schema {found}, this seam reads {SCHEMA}; upgrade one side")]
    Schema { path: PathBuf, found: u32 },
    /// Nothing to compare.
    #[error("no fingerprints found in {0}; pass *.json files written by `seam fingerprint`")]
    Empty(String),
    /// A kernel version in the policy could not be parsed.
    #[error("bad kernel version {0:?}: expected MAJOR.MINOR, e.g. 6.1")]
    Version(String),
}

/// The declared policy nodes are held to.
#[derive(Clone, Debug, Default)]
pub(crate) struct Policy {
    /// Oldest kernel (major, minor) allowed.
    pub min_kernel: Option<(u32, u32)>,
    /// Kernel releases allowed (`*` matches any run of characters); empty: any.
    pub allowed_kernels: Vec<String>,
}

/// Parses `6.1` or `6.12.3` (the patch level is ignored) into (major, minor).
pub(crate) fn parse_version(text: &str) -> Result<(u32, u32), FleetError> {
    kernel_version(text).ok_or_else(|| FleetError::Version(text.to_owned()))
}

/// (major, minor) at the start of a kernel release such as `6.12.111+deb12-cloud-amd64`.
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// A capability's live tier: its program type and rank (0: the best Seam has).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Tier {
    pub program_type: ProgramType,
    pub rank: u8,
}

/// One way a node falls short of the fleet or of the policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Shortfall {
    /// The capability is served by a worse tier than on the best node (or not at all).
    WorseTier {
        capability: Capability,
        tier: Option<Tier>,
        best: Tier,
        reductions: Vec<Reduction>,
    },
    /// On the best tier, but without hooks other nodes on that tier have live (an optional row,
    /// e.g. a legacy syscall another architecture lacks).
    MissingHooks {
        capability: Capability,
        missing: Vec<String>,
    },
    /// No kernel BTF: no tp_btf, LSM, fentry or fexit, and no offsets for the socket and file probes.
    MissingBtf,
    /// Kernel older than `--min-kernel`.
    KernelTooOld { release: String, minimum: String },
    /// Kernel not in `--allowed-kernels`.
    KernelNotAllowed { release: String },
    /// Rules differ from the fleet's majority (or no rules hash where others have one).
    RulesDrift {
        hash: Option<String>,
        expected: Option<String>,
    },
    /// The probe object differs from the fleet's majority (another Seam build).
    ProbeObjectDrift { hash: String, expected: String },
}

/// One node's verdict.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct NodeReport {
    pub node: String,
    pub source: PathBuf,
    pub kernel: String,
    /// The live tier per capability (None: not live).
    pub tiers: BTreeMap<Capability, Option<Tier>>,
    pub shortfalls: Vec<Shortfall>,
}

/// The fleet's verdict.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct FleetReport {
    /// True when no node falls short.
    pub uniform: bool,
    pub nodes: Vec<NodeReport>,
}

/// Reads fingerprints from files and directories (every `*.json` and `*.jsonl` directly
/// inside): `seam fingerprint` reports, or feeds of `seam run`, whose last start record holds the
/// fingerprint of the run that wrote it.
pub(crate) fn read_inputs(inputs: &[PathBuf]) -> Result<Vec<(PathBuf, Fingerprint)>, FleetError> {
    let mut files = Vec::new();
    for input in inputs {
        let meta = fs::metadata(input).map_err(|source| FleetError::Read {
            path: input.clone(),
            source,
        })?;
        if meta.is_dir() {
            let entries = fs::read_dir(input).map_err(|source| FleetError::Read {
                path: input.clone(),
                source,
            })?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json" || x == "jsonl"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(input.clone());
        }
    }
    if files.is_empty() {
        let names: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
        return Err(FleetError::Empty(names.join(", ")));
    }
    files.into_iter().map(|path| read_one(&path)).collect()
}

fn read_one(path: &Path) -> Result<(PathBuf, Fingerprint), FleetError> {
    let text = fs::read_to_string(path).map_err(|source| FleetError::Read {
        path: path.to_owned(),
        source,
    })?;
    let value = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(value) => value,
        Err(source) => last_start(&text).ok_or_else(|| FleetError::Parse {
            path: path.to_owned(),
            source,
        })?,
    };
    let value = match value["kind"] == "start" {
        true => value["fingerprint"].clone(),
        false => value,
    };
    let found = value["schema"].as_u64().unwrap_or(0);
    if found != u64::from(SCHEMA) {
        return Err(FleetError::Schema {
            path: path.to_owned(),
            found: u32::try_from(found).unwrap_or(u32::MAX),
        });
    }
    let fingerprint = serde_json::from_value(value).map_err(|source| FleetError::Parse {
        path: path.to_owned(),
        source,
    })?;
    Ok((path.to_owned(), fingerprint))
}

/// The last start record of a feed (JSON lines).
fn last_start(text: &str) -> Option<serde_json::Value> {
    text.lines()
        .rev()
        .filter(|line| line.contains("\"start\""))
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|record| record["kind"] == "start")
}

/// The most common value (ties: the smallest, so the verdict does not depend on input order).
fn majority<T: Ord + Clone>(values: impl Iterator<Item = T>) -> Option<T> {
    let mut counts: BTreeMap<T, usize> = BTreeMap::new();
    for v in values {
        *counts.entry(v).or_default() += 1;
    }
    let top = counts.values().copied().max()?;
    counts.into_iter().find(|(_, n)| *n == top).map(|(v, _)| v)
}

fn matches_glob(pattern: &str, text: &str) -> bool {
    globset::Glob::new(pattern)
        .map(|g| g.compile_matcher().is_match(text))
        .unwrap_or(pattern == text)
}

fn tier_of(live: &Live) -> Option<Tier> {
    Some(Tier {
        program_type: live.program_type?,
        rank: live.rank?,
    })
}

/// Compares the fingerprints against each other and the policy.
pub(crate) fn check(fingerprints: &[(PathBuf, Fingerprint)], policy: &Policy) -> FleetReport {
    let baseline = Baseline::of(fingerprints);
    let nodes: Vec<NodeReport> = fingerprints
        .iter()
        .map(|(source, fp)| baseline.node_report(source, fp, policy))
        .collect();
    FleetReport {
        uniform: nodes.iter().all(|n| n.shortfalls.is_empty()),
        nodes,
    }
}

/// What the fleet has at its best, and what most of its nodes run: what each node is held to.
struct Baseline<'a> {
    /// The best tier any node has, per capability (lowest rank wins).
    best: BTreeMap<Capability, Tier>,
    /// The hooks live on the best tier of each capability, on any node.
    best_hooks: BTreeMap<Capability, BTreeSet<&'a str>>,
    /// The majority's rules hash.
    rules: Option<String>,
    /// The majority's probe object hash.
    object: Option<String>,
}

impl<'a> Baseline<'a> {
    fn of(fingerprints: &'a [(PathBuf, Fingerprint)]) -> Self {
        let mut best: BTreeMap<Capability, Tier> = BTreeMap::new();
        for (_, fp) in fingerprints {
            for (capability, live) in &fp.capabilities {
                if let Some(tier) = tier_of(live) {
                    let entry = best.entry(*capability).or_insert(tier);
                    if tier.rank < entry.rank {
                        *entry = tier;
                    }
                }
            }
        }
        let mut best_hooks: BTreeMap<Capability, BTreeSet<&str>> = BTreeMap::new();
        for (_, fp) in fingerprints {
            for (capability, live) in &fp.capabilities {
                if let (Some(tier), Some(best_tier)) = (tier_of(live), best.get(capability))
                    && tier.rank == best_tier.rank
                {
                    best_hooks
                        .entry(*capability)
                        .or_default()
                        .extend(live.hooks.iter().map(String::as_str));
                }
            }
        }
        let rules = majority(fingerprints.iter().map(|(_, fp)| fp.rules_sha256.clone())).flatten();
        let object = majority(
            fingerprints
                .iter()
                .map(|(_, fp)| fp.probe_object_sha256.clone()),
        );
        Self {
            best,
            best_hooks,
            rules,
            object,
        }
    }

    /// One node's verdict: its tiers against the best, its kernel against the policy, its
    /// rules and probe object against the majority.
    fn node_report(&self, source: &Path, fp: &Fingerprint, policy: &Policy) -> NodeReport {
        let mut shortfalls = self.tier_shortfalls(fp);
        if !fp.btf.present {
            shortfalls.push(Shortfall::MissingBtf);
        }
        let release = &fp.kernel.release;
        shortfalls.extend(kernel_shortfalls(release, policy));
        shortfalls.extend(self.drift(fp));
        NodeReport {
            node: fp.node.clone(),
            source: source.to_owned(),
            kernel: release.clone(),
            tiers: fp
                .capabilities
                .iter()
                .map(|(c, l)| (*c, tier_of(l)))
                .collect(),
            shortfalls,
        }
    }

    /// Capabilities served by a worse tier than the best node's (or not at all), or on the best
    /// tier without hooks other nodes have live.
    fn tier_shortfalls(&self, fp: &Fingerprint) -> Vec<Shortfall> {
        let mut shortfalls = Vec::new();
        for (capability, best_tier) in &self.best {
            let live = fp.capabilities.get(capability);
            let tier = live.and_then(tier_of);
            if tier.is_none_or(|t| t.rank > best_tier.rank) {
                shortfalls.push(Shortfall::WorseTier {
                    capability: *capability,
                    tier,
                    best: *best_tier,
                    reductions: live.map(|l| l.reductions.clone()).unwrap_or_default(),
                });
            } else if let (Some(live), Some(all)) = (live, self.best_hooks.get(capability)) {
                let missing: Vec<String> = all
                    .iter()
                    .filter(|h| !live.hooks.iter().any(|l| l == *h))
                    .map(|h| (*h).to_owned())
                    .collect();
                if !missing.is_empty() {
                    shortfalls.push(Shortfall::MissingHooks {
                        capability: *capability,
                        missing,
                    });
                }
            }
        }
        shortfalls
    }

    /// Rules or probe object other than the majority's.
    fn drift(&self, fp: &Fingerprint) -> Vec<Shortfall> {
        let mut shortfalls = Vec::new();
        if self.rules.is_some() && fp.rules_sha256 != self.rules {
            shortfalls.push(Shortfall::RulesDrift {
                hash: fp.rules_sha256.clone(),
                expected: self.rules.clone(),
            });
        }
        if let Some(expected) = &self.object
            && &fp.probe_object_sha256 != expected
        {
            shortfalls.push(Shortfall::ProbeObjectDrift {
                hash: fp.probe_object_sha256.clone(),
                expected: expected.clone(),
            });
        }
        shortfalls
    }
}

/// A kernel `release` older than the policy's minimum, or not among its allowed releases.
fn kernel_shortfalls(release: &str, policy: &Policy) -> Vec<Shortfall> {
    let mut shortfalls = Vec::new();
    if let Some(min) = policy.min_kernel
        && kernel_version(release).is_none_or(|v| v < min)
    {
        shortfalls.push(Shortfall::KernelTooOld {
            release: release.to_owned(),
            minimum: format!("{}.{}", min.0, min.1),
        });
    }
    if !policy.allowed_kernels.is_empty()
        && !policy
            .allowed_kernels
            .iter()
            .any(|p| matches_glob(p, release))
    {
        shortfalls.push(Shortfall::KernelNotAllowed {
            release: release.to_owned(),
        });
    }
    shortfalls
}

#[cfg(test)]
mod tests;
