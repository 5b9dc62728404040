//! The run configs that docs/RESULTS.md points to (`docs/configs/`) still load: a renamed or removed key would
//! otherwise leave the documented commands broken without any test noticing.

use std::path::Path;

#[test]
fn documented_configs_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let origin = path.display().to_string();
        let value: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{origin}: {e}"));
        // a trajectory config is the one with a [data.scene] table, as `ebm-train train` tells them apart
        if value.get("data").and_then(|d| d.get("scene")).is_some() {
            ebm_traj::experiment::TrajConfig::from_toml(&text, &origin).unwrap_or_else(|e| panic!("{e}"));
        } else {
            ebm_cd::config::RunConfig::from_toml(&text, &origin).unwrap_or_else(|e| panic!("{e}"));
        }
        seen += 1;
    }
    assert!(seen >= 3, "expected the documented configs in {}, found {seen}", dir.display());
}
