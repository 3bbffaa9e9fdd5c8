//! The synthetic node the user-space benchmarks run on: tenants with a cgroup directory and a
//! path each (rules loaded with the given directories), and the agent's pipeline over them
//! with a feed file. No kernel: records come from [`super::records::Generator`].
use std::{path::PathBuf, sync::Arc};

use anyhow::{Context as _, Result};
use seam_common::MAX_TENANT_CGROUPS;

use super::records::Tenant;
use crate::{
    attribution::{Attributor, CgroupRegistry, LocalAddrs, ProcessTable},
    kernel::filter::NoFilter,
    metrics::{Metrics, PipelineMetrics},
    output::{SinkOptions, Sinks},
    pipeline::{Pipeline, PipelineOptions, input::Input},
    policy::RuleSet,
};

/// A pipeline over `tenants` synthetic tenants, in a scratch directory removed on drop.
pub(crate) struct Node {
    pub pipeline: Pipeline,
    pub tenants: Vec<Tenant>,
    pub metrics: Arc<Metrics>,
    pub feed: PathBuf,
    tmp: PathBuf,
}

impl Node {
    /// `rules`: directories loaded with the bench's tenants; `feed_spans`: ended spans go to
    /// the feed too.
    pub(crate) fn new(
        name: &str,
        rules: &[PathBuf],
        tenants: usize,
        feed_spans: bool,
    ) -> Result<Self> {
        let tmp = std::env::temp_dir().join(format!("seam-{name}-bench-{}", std::process::id()));
        let cgroups = tmp.join("cgroup");
        let procfs = tmp.join("proc");
        std::fs::create_dir_all(&procfs)
            .with_context(|| format!("creating {}", procfs.display()))?;
        let mut list = Vec::new();
        let mut toml = String::new();
        for i in 0..tenants.min(MAX_TENANT_CGROUPS as usize) {
            let dir = cgroups.join(format!("tenant-{i}"));
            std::fs::create_dir_all(&dir)?;
            let id = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&dir)?);
            let path = format!("/bench/t{i}");
            toml.push_str(&format!(
                "[[tenant]]\nname = \"t{i}\"\ncgroups = [\"tenant-{i}\"]\npaths = [\"{path}\"]\n\n"
            ));
            list.push(Tenant {
                cgroup_id: id,
                dir: path,
            });
        }
        let rules_dir = tmp.join("rules");
        std::fs::create_dir_all(&rules_dir)?;
        std::fs::write(rules_dir.join("zz-bench-tenants.toml"), toml)?;
        let mut dirs = rules.to_vec();
        dirs.push(rules_dir);
        let rules = RuleSet::load_dirs(&dirs).map_err(|e| anyhow::anyhow!("{e}"))?;

        let metrics = Arc::new(Metrics::new());
        let feed = tmp.join("feed.jsonl");
        let sink = Sinks::open(
            &SinkOptions {
                stdout: false,
                feed_file: Some(feed.clone()),
                feed_spans,
                ..SinkOptions::default()
            },
            &metrics,
        )
        .context("feed")?;
        let attributor = Attributor {
            cgroups: CgroupRegistry::new(cgroups),
            processes: ProcessTable::new([0; 16], procfs),
            local: LocalAddrs::current(),
        };
        let mut pipeline = Pipeline::new(
            rules,
            attributor,
            sink,
            Box::new(NoFilter),
            PipelineOptions {
                node: "bench".into(),
                max_open_spans: 100_000,
                own_ports: Vec::new(),
                live_hooks: Vec::new(),
            },
            PipelineMetrics::new(metrics.clone()),
        );
        pipeline.handle(Input::CgroupsChanged);
        Ok(Self {
            pipeline,
            tenants: list,
            metrics,
            feed,
            tmp,
        })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}
