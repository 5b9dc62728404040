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
        // told apart as `ebm-train train` does
        if ebm_traj::experiment::is_trajectory_config(&text) {
            ebm_traj::experiment::TrajConfig::from_toml(&text, &origin).unwrap_or_else(|e| panic!("{e}"));
        } else {
            ebm_cd::config::RunConfig::from_toml(&text, &origin).unwrap_or_else(|e| panic!("{e}"));
        }
        seen += 1;
    }
    assert!(seen >= 3, "expected the documented configs in {}, found {seen}", dir.display());
}
