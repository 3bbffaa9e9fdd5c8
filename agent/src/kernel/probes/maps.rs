//! The probes' maps as the agent uses them: the tenant filter, what the reader drains, the
//! silences of repeated opens and the tenants' flood counters.
use aya::maps::{
    HashMap as BpfHashMap, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues, RingBuf,
};
use seam_common::{
    MAP_EVENTS, MAP_LOSSES, MAP_SILENT, MAP_TENANT_CGROUPS, MAP_TENANT_FLOODS, SilentKey,
    SilentValue, TenantSlot,
};

use super::{
    ProbeError,
    budget::{FloodReader, TenantIndexes},
};
use crate::kernel::{
    events::{
        reader::KernelSource,
        silence::{SilenceError, SilenceMap},
    },
    filter::{TenantFilter, WatchError},
};

/// `TENANT_CGROUPS`: the cgroups whose tasks and sockets produce events, each with its tenant's
/// index into the kernel's event budget.
pub(crate) struct KernelTenantFilter(BpfHashMap<MapData, u64, TenantSlot>, TenantIndexes);

impl TenantFilter for KernelTenantFilter {
    fn watch(&mut self, cgroup_id: u64, tenant: &str) -> Result<(), WatchError> {
        let slot = TenantSlot {
            tenant_index: self.1.index(tenant),
            _pad: 0,
        };
        self.0
            .insert(cgroup_id, slot, 0)
            .map_err(|source| WatchError {
                cgroup_id,
                source: Box::new(source),
            })
    }

    fn unwatch(&mut self, cgroup_id: u64) {
        // Already gone from the map is fine: the kernel may have freed the id.
        let _ = self.0.remove(&cgroup_id);
    }
}

fn take(ebpf: &mut aya::Ebpf, name: &'static str) -> Result<aya::maps::Map, ProbeError> {
    ebpf.take_map(name).ok_or(ProbeError::MissingMap { name })
}

fn typed<T, E: std::error::Error + Send + Sync + 'static>(
    name: &'static str,
    result: Result<T, E>,
) -> Result<T, ProbeError> {
    result.map_err(|source| ProbeError::Map {
        name,
        source: Box::new(source),
    })
}

/// Takes the filter map and the reader's maps out of the loaded object.
pub(crate) fn take_maps(
    ebpf: &mut aya::Ebpf,
    tcp_counters: bool,
) -> Result<(KernelTenantFilter, KernelSource), ProbeError> {
    let ring = typed(MAP_EVENTS, RingBuf::try_from(take(ebpf, MAP_EVENTS)?))?;
    let filter = typed(
        MAP_TENANT_CGROUPS,
        BpfHashMap::try_from(take(ebpf, MAP_TENANT_CGROUPS)?),
    )?;
    let losses = typed(MAP_LOSSES, PerCpuArray::try_from(take(ebpf, MAP_LOSSES)?))?;
    let floods = typed(
        MAP_TENANT_FLOODS,
        PerCpuArray::try_from(take(ebpf, MAP_TENANT_FLOODS)?),
    )?;
    let indexes = TenantIndexes::default();
    Ok((
        KernelTenantFilter(filter, indexes.clone()),
        KernelSource {
            ring,
            losses,
            floods: FloodReader::new(floods, indexes),
            tcp_counters,
        },
    ))
}

/// `SILENT`: the (cgroup, directory, class) keys whose repeated opens the kernel counts.
pub(crate) struct KernelSilenceMap {
    map: PerCpuHashMap<MapData, SilentKey, SilentValue>,
    cpus: usize,
}

impl KernelSilenceMap {
    /// Takes `SILENT` out of the loaded object (None if it is missing).
    pub(crate) fn take(ebpf: &mut aya::Ebpf) -> Result<Self, ProbeError> {
        let map = typed(MAP_SILENT, PerCpuHashMap::try_from(take(ebpf, MAP_SILENT)?))?;
        let cpus = aya::util::nr_cpus().map_err(|(_, source)| ProbeError::Map {
            name: MAP_SILENT,
            source: Box::new(source),
        })?;
        Ok(Self { map, cpus })
    }
}

impl SilenceMap for KernelSilenceMap {
    fn insert(&mut self, key: SilentKey, generation: u64) -> Result<(), SilenceError> {
        // An entry of an older generation keeps its counts: the kernel stopped adding to it
        // when the generation moved on, so nothing races with this write.
        let counts: Vec<u64> = match self.map.get(&key, 0) {
            Ok(values) => values.iter().map(|v| v.count).collect(),
            Err(_) => vec![0; self.cpus],
        };
        let values: Vec<SilentValue> = counts
            .into_iter()
            .map(|count| SilentValue { generation, count })
            .collect();
        let values = PerCpuValues::try_from(values).map_err(SilenceError::Values)?;
        self.map.insert(key, values, 0).map_err(SilenceError::Map)
    }

    fn counts(&mut self) -> Vec<(SilentKey, u64)> {
        self.map
            .iter()
            .filter_map(Result::ok)
            .map(|(key, values)| (key, values.iter().map(|v| v.count).sum()))
            .collect()
    }

    fn clear(&mut self) {
        let keys: Vec<SilentKey> = self.map.keys().filter_map(Result::ok).collect();
        for key in keys {
            let _ = self.map.remove(&key);
        }
    }
}
