//! The probes' maps as the agent uses them: the tenant filter and what the reader drains.
use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use seam_common::{MAP_EVENTS, MAP_LOSSES, MAP_TENANT_CGROUPS, MAP_TENANT_FLOODS, TenantSlot};

use super::{
    ProbeError,
    budget::{FloodReader, TenantIndexes},
};
use crate::{attribution::TenantFilter, events::reader::KernelSource};

/// `TENANT_CGROUPS`: the cgroups whose tasks and sockets produce events, each with its tenant's
/// index into the kernel's event budget.
pub(crate) struct KernelTenantFilter(BpfHashMap<MapData, u64, TenantSlot>, TenantIndexes);

impl TenantFilter for KernelTenantFilter {
    fn watch(&mut self, cgroup_id: u64, tenant: &str) -> Result<(), String> {
        let slot = TenantSlot {
            tenant_index: self.1.index(tenant),
            _pad: 0,
        };
        self.0
            .insert(cgroup_id, slot, 0)
            .map_err(|error| error.to_string())
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
