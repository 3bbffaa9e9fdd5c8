//! Container ids in cgroup paths. Runtimes name a container's cgroup after its id:
//! `docker-<id>.scope`, `cri-containerd-<id>.scope`, `crio-<id>.scope`, `libpod-<id>.scope`
//! with the systemd driver, a bare `<id>` with the cgroupfs driver (`/docker/<id>`,
//! `kubepods/besteffort/pod<uid>/<id>`). The nearest such component wins, so a container's
//! own sub-cgroups belong to it.

/// Length of a full container id (64 hex digits).
const ID_LEN: usize = 64;

fn is_id(text: &str) -> bool {
    text.len() == ID_LEN && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The container id one cgroup path component names, if any.
fn component_id(component: &str) -> Option<&str> {
    if is_id(component) {
        return Some(component);
    }
    let stem = component.strip_suffix(".scope")?;
    // `crio-conmon-<id>.scope` is CRI-O's monitor, not the container.
    if stem.starts_with("crio-conmon-") {
        return None;
    }
    let id = stem.rsplit_once('-').map(|(_, id)| id)?;
    is_id(id).then_some(id)
}

/// The container a cgroup (path relative to the cgroup2 mount) belongs to: the id named by
/// the path's deepest component that names one.
pub(crate) fn container_id(path: &str) -> Option<&str> {
    path.trim_matches('/').rsplit('/').find_map(component_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "787bf3cbc14b4cd08f4fce230d04b9166a2e2bde70361d4f64c6557d2fc67654";

    #[test]
    fn finds_ids_of_every_runtime_layout() {
        for path in [
            format!("docker/{ID}"),
            format!("/docker/{ID}/"),
            format!("system.slice/docker-{ID}.scope"),
            format!(
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1f2e_3d.slice/\
                 cri-containerd-{ID}.scope"
            ),
            format!("kubepods/burstable/pod1f2e-3d/{ID}"),
            format!("kubepods.slice/kubepods-pod1.slice/crio-{ID}.scope"),
            format!("machine.slice/libpod-{ID}.scope/container"),
            format!("docker/{ID}/init.scope"),
        ] {
            assert_eq!(container_id(&path), Some(ID), "{path}");
        }
    }

    #[test]
    fn other_cgroups_name_no_container() {
        for path in [
            "",
            "system.slice/docker.service",
            "kubepods.slice/kubepods-besteffort.slice",
            "user.slice/user-0.slice/session-1.scope",
            "seam-demo/tenant-a",
            &format!("kubepods.slice/crio-conmon-{ID}.scope"),
            &format!("docker/{}", &ID[..12]),
        ] {
            assert_eq!(container_id(path), None, "{path}");
        }
    }
}
