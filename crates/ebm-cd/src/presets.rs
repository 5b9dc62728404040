//! Built-in presets: TOML files embedded in the binary, printable so a user can copy and edit them.

use crate::config::RunConfig;
use ebm_data::Toy2d;

const TOY: &str = include_str!("../presets/toy.toml");

/// The image presets, by name.
const IMAGE: [(&str, &str); 26] = [
    ("digits", include_str!("../presets/digits.toml")),
    ("digits-hybrid", include_str!("../presets/digits-hybrid.toml")),
    ("digits-softmax", include_str!("../presets/digits-softmax.toml")),
    ("digits-adv", include_str!("../presets/digits-adv.toml")),
    ("mnist", include_str!("../presets/mnist.toml")),
    ("mnist-cpu", include_str!("../presets/mnist-cpu.toml")),
    ("fashion-mnist", include_str!("../presets/fashion-mnist.toml")),
    ("fashion-mnist-cpu", include_str!("../presets/fashion-mnist-cpu.toml")),
    ("fashion-mnist-hybrid-cpu", include_str!("../presets/fashion-mnist-hybrid-cpu.toml")),
    ("fashion-mnist-softmax-cpu", include_str!("../presets/fashion-mnist-softmax-cpu.toml")),
    ("fashion-mnist-adv-cpu", include_str!("../presets/fashion-mnist-adv-cpu.toml")),
    ("cifar10-cond", include_str!("../presets/cifar10-cond.toml")),
    ("cifar10-cond-cpu", include_str!("../presets/cifar10-cond-cpu.toml")),
    ("cifar10-uncond", include_str!("../presets/cifar10-uncond.toml")),
    ("cifar10-uncond-cpu", include_str!("../presets/cifar10-uncond-cpu.toml")),
    ("imagenet32-cond", include_str!("../presets/imagenet32-cond.toml")),
    ("imagenet32-cond-cpu", include_str!("../presets/imagenet32-cond-cpu.toml")),
    ("dsprites-size", include_str!("../presets/dsprites-size.toml")),
    ("dsprites-position", include_str!("../presets/dsprites-position.toml")),
    ("dsprites-shape", include_str!("../presets/dsprites-shape.toml")),
    ("dsprites-rotation", include_str!("../presets/dsprites-rotation.toml")),
    ("shapes-size-cpu", include_str!("../presets/shapes-size-cpu.toml")),
    ("shapes-position-cpu", include_str!("../presets/shapes-position-cpu.toml")),
    ("shapes-size-all-cpu", include_str!("../presets/shapes-size-all-cpu.toml")),
    ("shapes-position-all-cpu", include_str!("../presets/shapes-position-all-cpu.toml")),
    ("shapes-shape-all-cpu", include_str!("../presets/shapes-shape-all-cpu.toml")),
];

/// Names of every preset.
pub fn names() -> Vec<String> {
    let mut v: Vec<String> = IMAGE.iter().map(|(n, _)| n.to_string()).collect();
    v.extend(Toy2d::ALL.iter().map(|d| format!("toy-{}", d.name())));
    v
}

/// The TOML text of preset `name`.
pub fn text(name: &str) -> crate::Result<String> {
    if let Some((_, t)) = IMAGE.iter().find(|(n, _)| *n == name) {
        return Ok(t.to_string());
    }
    if let Some(density) = name.strip_prefix("toy-") {
        if let Ok(d) = density.parse::<Toy2d>() {
            return Ok(TOY.replace("{density}", d.name()));
        }
    }
    crate::bail!("unknown preset `{name}`; the presets are: {}", names().join(", "))
}

/// The parsed preset `name`.
pub fn load(name: &str) -> crate::Result<RunConfig> {
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

    /// Every CPU variant states its wall-clock budget; every full-size image preset says it is sized for a GPU.
    #[test]
    fn image_presets_state_their_budget() {
        for (name, _) in super::IMAGE.iter().filter(|(n, _)| *n != "digits") {
            if name.starts_with("digits-") {
                let d = super::load(name).unwrap().description;
                assert!(d.contains("Budget: ") && d.contains("on 2 CPU cores"), "{name}: {d}");
                continue;
            }
            let d = super::load(name).unwrap().description;
            if name.ends_with("-cpu") {
                assert!(d.contains("Budget: ") && d.contains("on 2 CPU cores"), "{name}: {d}");
            } else {
                assert!(d.contains("GPU-sized"), "{name}: {d}");
            }
        }
    }

    /// The dSprites presets are trainable: their model takes their factor's condition vector, and without the data
    /// the trainer says how to get it.
    #[test]
    fn dsprites_presets_condition_on_their_factor() {
        for (factor, dim) in [("size", 1), ("position", 2), ("shape", 3), ("rotation", 2)] {
            let cfg = super::load(&format!("dsprites-{factor}")).unwrap();
            assert_eq!(cfg.model.cond_dim(), dim);
            let crate::config::DataConfig::Images { source, .. } = &cfg.data else { panic!("an image preset") };
            assert_eq!(source.factor().map(|f| (f.name(), f.cond_dim())), Some((factor, dim)));
            if !ebm_data::sources::cache_dir("dsprites").exists() {
                let e = crate::image::load_data(&cfg).err().expect("no data").to_string();
                assert!(e.contains("fetch-data dsprites"), "{e}");
            }
        }
    }

    #[test]
    fn all_factors_presets_share_their_images_and_the_composition_mask() {
        let shapes = |name: &str| {
            let cfg = super::load(name).unwrap();
            let crate::config::DataConfig::Images { shapes: Some(s), .. } = cfg.data else { panic!("{name}") };
            s
        };
        let size = shapes("shapes-size-all-cpu");
        assert_eq!(size.held_out, Some(ebm_data::cells::HeldOut::composition_grid(15)));
        assert_eq!(size.shapes.len(), 3);
        assert!(size.scale.lo < size.scale.hi && size.pos_x.lo < size.pos_x.hi && size.pos_y.lo < size.pos_y.hi);
        assert_eq!(shapes("shapes-position-all-cpu"), size);
        assert_eq!(shapes("shapes-shape-all-cpu"), size);
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
