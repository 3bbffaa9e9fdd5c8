use std::collections::BTreeSet;

use super::*;

/// The names of the programs in the production object, as aya's loader parses it.
fn programs() -> BTreeSet<String> {
    aya_obj::Object::parse(PROBE_OBJECT)
        .expect("the production probe object parses")
        .programs
        .into_keys()
        .collect()
}

#[test]
fn the_production_object_holds_every_probe_and_no_benchmark_program() {
    let programs = programs();
    for spec in PROBES {
        assert!(
            programs.contains(spec.program),
            "{} is in the probe table but not in the object",
            spec.program
        );
    }
    let floor: Vec<_> = programs
        .iter()
        .filter(|name| name.starts_with("seam_floor"))
        .collect();
    assert!(
        floor.is_empty(),
        "the benchmark floor's programs ship in the production object: {floor:?}; they belong \
         in ebpf/src/floor.rs's own object (seam-floor)"
    );
}
