//! Built-in presets: TOML files embedded in the binary, printable so a user can copy and edit them.

use crate::config::RunConfig;
use ebm_data::Toy2d;

const TOY: &str = include_str!("../presets/toy.toml");

/// The image presets, by name.
const IMAGE: [(&str, &str); 1] = [("digits", include_str!("../presets/digits.toml"))];

/// Names of every preset.
pub fn names() -> Vec<String> {
    let mut v: Vec<String> = IMAGE.iter().map(|(n, _)| n.to_string()).collect();
    v.extend(Toy2d::ALL.iter().map(|d| format!("toy-{}", d.name())));
    v
}

/// The TOML text of preset `name`.
pub fn text(name: &str) -> anyhow::Result<String> {
    if let Some((_, t)) = IMAGE.iter().find(|(n, _)| *n == name) {
        return Ok(t.to_string());
    }
    if let Some(density) = name.strip_prefix("toy-") {
        if let Ok(d) = density.parse::<Toy2d>() {
            return Ok(TOY.replace("{density}", d.name()));
        }
    }
    anyhow::bail!("unknown preset `{name}`; the presets are: {}", names().join(", "))
}

/// The parsed preset `name`.
pub fn load(name: &str) -> anyhow::Result<RunConfig> {
    RunConfig::from_toml(&text(name)?, &format!("preset {name}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_preset_parses_and_round_trips() {
        for n in super::names() {
            let cfg = super::load(&n).unwrap();
            assert_eq!(cfg.name, n);
            let again = crate::config::RunConfig::from_toml(&cfg.to_toml(), "round trip").unwrap();
            assert_eq!(cfg, again);
        }
    }

    #[test]
    fn unknown_names_and_keys_are_errors() {
        let err = super::load("toy-nope").unwrap_err().to_string();
        assert!(err.contains("unknown preset `toy-nope`") && err.contains("toy-8gaussians"), "{err}");
        let text = super::text("toy-moons").unwrap().replace("reinit_prob", "reinit_probability");
        let err = crate::config::RunConfig::from_toml(&text, "my.toml").unwrap_err().to_string();
        assert!(err.contains("my.toml") && err.contains("reinit_probability"), "{err}");
    }
}
