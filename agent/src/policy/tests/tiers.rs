//! Tiered `paths` and `endpoints`: both syntaxes load, the longest entry decides, errors point
//! at the entry.
use super::{RULES, error, ip, load};
use crate::model::{spans::TenantName, vocab::Tier};

const TIERED: &str = r#"
[[tenant]]
name = "acme"
cgroups = ["t/acme"]
paths = ["/srv/acme", { path = "/srv/acme/pii", tier = "regulated" }, { path = "/srv/acme/pii/public", tier = "public" }]
endpoints = ["10.1.0.0/16", { endpoint = "10.1.2.0/24:5432", tier = "regulated" }, { endpoint = "10.1.2.0/24" }]

[[tenant]]
name = "globex"
cgroups = ["t/globex"]
paths = [{ path = "/srv/globex", tier = "operational" }]
"#;

#[test]
fn tiers_come_from_the_longest_entry_of_the_owner() {
    let set = load(&[("t.toml", TIERED), ("r.toml", RULES)]);
    let acme = TenantName::new("acme");
    let globex = TenantName::new("globex");
    assert_eq!(set.path_tier(&acme, "/srv/acme/x"), None);
    assert_eq!(
        set.path_tier(&acme, "/srv/acme/pii/cards.csv"),
        Some(Tier::Regulated)
    );
    assert_eq!(
        set.path_tier(&acme, "/srv/acme/pii/public/index.html"),
        Some(Tier::Public)
    );
    assert_eq!(set.path_tier(&acme, "/srv/acme-other"), None);
    assert_eq!(
        set.path_tier(&globex, "/srv/globex/a"),
        Some(Tier::Operational)
    );
    // Plain strings still own their paths.
    assert_eq!(
        set.tenant_for_path("/srv/acme/pii/x").map(|t| t.name),
        Some(acme.clone())
    );
    assert_eq!(
        set.endpoint_tier(&acme, ip("10.1.2.3"), 5432),
        Some(Tier::Regulated)
    );
    assert_eq!(set.endpoint_tier(&acme, ip("10.1.2.3"), 80), None);
    assert_eq!(set.endpoint_tier(&acme, ip("10.1.9.9"), 5432), None);
    assert_eq!(set.endpoint_tier(&globex, ip("10.1.2.3"), 5432), None);
}

#[test]
fn a_bad_tier_or_key_is_an_error_at_the_entry() {
    let bad_tier = "[[tenant]]\nname = \"a\"\ncgroups = [\"a\"]\npaths = [{ path = \"/a\", tier = \"secret\" }]\n";
    let err = error(&[("t.toml", bad_tier), ("r.toml", RULES)]);
    assert!(err.to_string().contains("secret"), "{err}");
    assert!(err.to_string().contains("regulated"), "{err}");
    let bad_key =
        "[[tenant]]\nname = \"a\"\ncgroups = [\"a\"]\nendpoints = [{ path = \"10.0.0.0/8\" }]\n";
    let err = error(&[("t.toml", bad_key), ("r.toml", RULES)]);
    assert!(err.to_string().contains("`endpoint`"), "{err}");
    let bad_path = "[[tenant]]\nname = \"a\"\ncgroups = [\"a\"]\npaths = [{ path = \"rel\", tier = \"public\" }]\n";
    let err = error(&[("t.toml", bad_path), ("r.toml", RULES)]);
    assert!(err.to_string().contains("invalid path prefix"), "{err}");
}
