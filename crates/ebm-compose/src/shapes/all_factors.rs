//! `compose-shapes --design all-factors`: composition on combinations no model saw, with models trained where
//! every factor varies (issue 15), as the official dSprites composition models were.
//!
//! The size (`shapes-size-all-cpu`), position (`shapes-position-all-cpu`) and shape (`shapes-shape-all-cpu`)
//! models see the same generated images: all three shapes, scale 0.5..1 and position 0..1 drawn together,
//! orientation 0, minus the held-out (scale, position) cells of an [`ebm_data::cells::HeldOut`] mask. Each is
//! conditioned on its own factor only. Two parts, two commands:
//!
//! - [`Part::Pairs`] (the default): the sum of the size and position energies sampled for every cell of the
//!   mask's grid, held out and seen; each model alone under its own condition on the same chains' noise; the
//!   composed chains also from the generator's images of the held-out cells; and the composed energy's ranking of
//!   the true image of a cell among the images of every grid cell. Writes `compose_shapes.json`,
//!   `composed.png` (rows: held-out cells; columns: composed samples), `size_only.png`, `position_only.png`,
//!   `seen_composed.png`.
//! - [`Part::Shape`]: adds the shape model: three-model composition on the held-out (shape, scale, position)
//!   triples, position AND NOT square (bounded NOT, [`ebm_sampler::builder`]) and position A OR position B.
//!   Writes `compose_shapes_shape.json`, `triples.png`, `not_square.png`, `or.png`.
//!
//! Every sample is judged by the closed-form [`ebm_eval::probe`], reading the shape too; the probe's own score on
//! the generator's images of the held-out cells (all three shapes) is reported beside the models'.

use super::{score, train_or_reuse, Score, CHAIN_STREAM};
use candle_core::{Device, Tensor};
use ebm_cd::config::{DataConfig, RunConfig};
use ebm_cd::{CdError, Result, Run};
use ebm_data::cells::{Cell, HeldOut};
use ebm_data::dsprites::Factor;
use ebm_data::shapes::{Shape, ShapesConfig, Sprite};
use ebm_eval::factors::{factor_error, tolerance};
use ebm_eval::probe::{self, Measurement};
use ebm_kernels::Rng;
use ebm_models::EnergyNet;
use ebm_sampler::builder::{compose, ComposeOp, Part as NotPart};
use ebm_sampler::starts::{chunked, uniform, Stage};
use ebm_sampler::{Energy, Langevin, LogSumExp, Sum, Term};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which experiment of the all-factors design to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    /// Size x position on the held-out cells (the bar).
    Pairs,
    /// The shape model: three-factor composition, NOT and OR.
    Shape,
}

impl std::str::FromStr for Part {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "pairs" => Ok(Part::Pairs),
            "shape" => Ok(Part::Shape),
            _ => Err(format!("unknown part `{s}` (use pairs or shape)")),
        }
    }
}

/// What `compose-shapes --design all-factors` does.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Trained models (run folders); each trained into OUT/<factor> from its `shapes-<factor>-all-cpu` preset
    /// when absent (or reused if OUT/<factor> holds one).
    pub size_model: Option<PathBuf>,
    pub position_model: Option<PathBuf>,
    pub shape_model: Option<PathBuf>,
    /// Override the training iterations of the models trained here.
    pub iterations: Option<u64>,
    pub part: Part,
    /// Chains per held-out cell (and per held-out triple and NOT position; twice as many per OR pair). The
    /// bar counts only with at least [`MIN_SAMPLES`].
    pub samples_per_cell: usize,
    /// Chains per seen cell.
    pub seen_samples: usize,
    /// Langevin steps from uniform noise (the size model's sampler settings otherwise).
    pub steps: usize,
    pub seed: u64,
    pub out: PathBuf,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            size_model: None,
            position_model: None,
            shape_model: None,
            iterations: None,
            part: Part::Pairs,
            samples_per_cell: 32,
            seen_samples: 8,
            steps: 60,
            seed: 0,
            out: PathBuf::from("runs/compose-shapes-all"),
        }
    }
}

/// Chains per held-out cell below which `meets_bar` is false whatever the rates (the minimum).
pub const MIN_SAMPLES: usize = 32;
/// Held-out cells below which `meets_bar` is false.
pub const MIN_CELLS: usize = 5;

/// The streams of the chains: held-out cells ([`CHAIN_STREAM`], as the slice design), seen cells, NOT (and its
/// position-only comparison, the same seeds), OR (forked per pair), and the NOT chains' starts.
const SEEN_STREAM: u64 = 0x5ee1;
const NOT_STREAM: u64 = 0x7a70;
const OR_STREAM: u64 = 0x0e0e;
const NOT_START_STREAM: u64 = 0x7a71;

/// The run config of one of the all-factors models (its preset).
pub fn experiment_config(which: Factor) -> Result<RunConfig> {
    let cfg = ebm_cd::presets::load(&format!("shapes-{}-all-cpu", which.name()))?;
    cfg.validate(&format!("the {} model's config", which.name()))?;
    Ok(cfg)
}

/// One cell (or triple) and how each way of sampling it scored.
#[derive(Debug, Clone, Serialize)]
pub struct CellResult {
    pub scale: f32,
    pub position: [f32; 2],
    pub held_out: bool,
    pub samples: usize,
    pub composed: Score,
    pub size_only: Score,
    pub position_only: Score,
    /// The composed chains started at the generator's images of the cell (held-out cells only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub composed_from_truth: Option<Score>,
}

/// `compose_shapes.json` of the all-factors design (the slice design's keys where they mean the same).
#[derive(Debug, Clone, Serialize)]
pub struct PairsReport {
    pub design: &'static str,
    pub size_model: String,
    pub position_model: String,
    /// The mask the models were trained with, as their configs state it.
    pub mask: HeldOut,
    pub held_out_cells: Vec<Cell>,
    pub tolerance: f64,
    pub samples_per_cell: usize,
    pub seen_samples: usize,
    pub steps: usize,
    /// Over the held-out cells: fraction of samples with scale and position within tolerance.
    pub held_out_composed: f64,
    pub held_out_size_only: f64,
    pub held_out_position_only: f64,
    /// The generator's images of the held-out cells (all three shapes): the probe's own score.
    pub held_out_truth: f64,
    /// The composed chains started at those images instead of noise.
    pub held_out_composed_from_truth: f64,
    /// Over the seen cells.
    pub seen_composed: f64,
    pub seen_size_only: f64,
    pub seen_position_only: f64,
    /// Fraction of (held-out cell, shape) whose generator image has the lowest composed energy, under the cell's
    /// conditions, among the images (same shape) of every grid cell.
    pub held_out_energy_rank: f64,
    /// Each model's own ranking on the held-out cells: the size model among the grid's scales at the cell's
    /// position, the position model among the grid's positions at the cell's scale (chance: 1/5 and 1/9).
    pub held_out_ranks: Ranks,
    /// The same over the seen cells.
    pub seen_energy_rank: f64,
    pub seen_ranks: Ranks,
    /// Composed >= 60% and >= 2x each single model on held-out cells, with at least [`MIN_CELLS`] cells of at
    /// least [`MIN_SAMPLES`] chains.
    pub meets_bar: bool,
    pub seed: u64,
    pub cells: Vec<CellResult>,
}

/// Three-model composition on one held-out triple.
#[derive(Debug, Clone, Serialize)]
pub struct TripleResult {
    pub shape: Shape,
    pub scale: f32,
    pub position: [f32; 2],
    /// Fraction with shape, scale and position all right: the three models' sum, the size + position sum, the
    /// shape model alone.
    pub composed3: f64,
    pub composed2: f64,
    pub shape_only: f64,
    /// Fraction of the three-model samples with the right shape.
    pub composed3_shape: f64,
}

/// NOT at one position: `E_pos(x | p) + BoundedNot(E_shape(x | square))`.
#[derive(Debug, Clone, Serialize)]
pub struct NotResult {
    pub position: [f32; 2],
    /// Fraction at the position and not a square: with the NOT term, and the position model alone.
    pub at_position_not_square: f64,
    pub position_only_not_square: f64,
    /// Fraction at the position, with the NOT term.
    pub at_position: f64,
}

/// OR of two positions at temperature `T`: `-T log(exp(-E_pos(x | a) / T) + exp(-E_pos(x | b) / T))`.
#[derive(Debug, Clone, Serialize)]
pub struct OrResult {
    pub a: [f32; 2],
    pub b: [f32; 2],
    /// 1: the plain mixture of the two densities. Otherwise a quarter of `gap`, so that at a true image of
    /// one position the other component's responsibility is about `e^-4` (2%).
    pub temperature: f64,
    /// The position model's mean energy gap between the wrong and the right condition on the generator's
    /// images at `a` and at `b`: how far apart in energy the two modes are.
    pub gap: f64,
    pub at_a: f64,
    pub at_b: f64,
    /// `min(at_a, at_b) / (at_a + at_b)` (0.5: even; 0.4 is a 60/40 split).
    pub balance: f64,
    /// At least half the samples at one of the two, split no worse than 60/40 (so each mode holds >= 20%).
    pub both_modes_balanced: bool,
}

/// `compose_shapes_shape.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ShapeReport {
    pub design: &'static str,
    pub size_model: String,
    pub position_model: String,
    pub shape_model: String,
    pub mask: HeldOut,
    pub tolerance: f64,
    pub samples_per_cell: usize,
    pub steps: usize,
    pub seed: u64,
    /// Over the held-out triples (every held-out cell with each shape).
    pub held_out_composed3: f64,
    pub held_out_composed2: f64,
    pub held_out_shape_only: f64,
    /// The probe on the generator's images of the triples.
    pub held_out_truth: f64,
    pub triples: Vec<TripleResult>,
    /// Position AND NOT square, over the grid's positions.
    pub not_square: f64,
    pub not_square_position_only: f64,
    /// The NOT term's margin and softness: the mean and standard deviation of the shape model's energy under
    /// "square" on the generator's ellipses and hearts (the term acts only on images more square than those).
    pub not_margin: f64,
    pub not_softness: f64,
    pub not: Vec<NotResult>,
    pub or: Vec<OrResult>,
}

/// The models of the experiment, loaded and frozen, with the mask they share.
struct Models {
    size: (PathBuf, Arc<EnergyNet>),
    position: (PathBuf, Arc<EnergyNet>),
    shape: Option<(PathBuf, Arc<EnergyNet>)>,
    mask: HeldOut,
    /// The generator config the models were trained on (the same for all).
    data: ShapesConfig,
    side: usize,
    supersample: u32,
    sampler: Langevin,
}

/// The top-level keys in which two generator configs differ.
fn differing_keys(a: &ShapesConfig, b: &ShapesConfig) -> String {
    let (va, vb) = (serde_json::to_value(a).ok(), serde_json::to_value(b).ok());
    let keys: Vec<String> = match (va, vb) {
        (Some(serde_json::Value::Object(x)), Some(serde_json::Value::Object(y))) => {
            let mut k: Vec<String> = x.keys().chain(y.keys()).filter(|k| x.get(*k) != y.get(*k)).cloned().collect();
            k.dedup();
            k
        }
        _ => Vec::new(),
    };
    keys.join(", ")
}

/// `data.shapes` of a run folder's config, without loading its model.
fn folder_shapes(dir: &Path) -> Option<ShapesConfig> {
    let cfg = ebm_cd::config::RunConfig::from_file(&dir.join("config.toml")).ok()?;
    match &cfg.data {
        DataConfig::Images { source, shapes, .. } => source.shapes_config(shapes.as_ref()),
        _ => None,
    }
}

fn load(dir: &Path, which: Factor, device: &Device) -> Result<(Arc<EnergyNet>, ShapesConfig, RunConfig)> {
    let (mut m, cfg) = Run::open_folder(dir, device)?;
    if m.config().cond_dim() != which.cond_dim() || m.config().is_class_conditional() {
        return Err(CdError::run_folder(
            dir,
            format!("expected a model conditioned on {} continuous values (the {})", which.cond_dim(), which.name()),
        ));
    }
    let shapes = match &cfg.data {
        DataConfig::Images { source, shapes, .. } if source.factor() == Some(which) => {
            source.shapes_config(shapes.as_ref())
        }
        _ => None,
    };
    let Some(shapes) = shapes.filter(|s| s.held_out.is_some()) else {
        return Err(CdError::run_folder(
            dir,
            format!(
                "not a {} model of the all-factors design: its data must be the generated shapes-{} source with a \
                 data.shapes.held_out mask (preset shapes-{}-all-cpu)",
                which.name(),
                which.name(),
                which.name()
            ),
        ));
    };
    m.set_frozen(true);
    Ok((Arc::new(m), shapes, cfg))
}

impl Models {
    fn open(a: &Settings, with_shape: bool, device: &Device) -> Result<Models> {
        // a model to train here must match the given ones: check before spending the training time
        let mut wanted = vec![(&a.size_model, Factor::Size), (&a.position_model, Factor::Position)];
        if with_shape {
            wanted.push((&a.shape_model, Factor::Shape));
        }
        let to_train: Vec<Factor> = wanted
            .iter()
            .filter(|(g, f)| g.is_none() && !a.out.join(f.name()).join("model.safetensors").exists())
            .map(|(_, f)| *f)
            .collect();
        if let Some(f) = to_train.first() {
            let preset = match &experiment_config(*f)?.data {
                DataConfig::Images { source, shapes, .. } => source.shapes_config(shapes.as_ref()),
                _ => None,
            };
            for (given, _) in wanted.iter().filter(|(g, _)| g.is_some()) {
                let dir = given.as_deref().expect("filtered");
                if let (Some(p), Some(d)) = (&preset, folder_shapes(dir)) {
                    if *p != d {
                        return Err(CdError::run_folder(
                            dir,
                            format!(
                                "its data.shapes differ from preset shapes-{}-all-cpu's ({}), which would be \
                                 trained here: the models must see the same images, mask included",
                                f.name(),
                                differing_keys(p, &d)
                            ),
                        ));
                    }
                }
            }
        }
        let dir = |given: &Option<PathBuf>, which: Factor| {
            train_or_reuse(
                given.as_deref(),
                &a.out.join(which.name()),
                which.name(),
                || experiment_config(which),
                a.iterations,
                device,
            )
        };
        let size_dir = dir(&a.size_model, Factor::Size)?;
        let pos_dir = dir(&a.position_model, Factor::Position)?;
        let shape_dir = if with_shape { Some(dir(&a.shape_model, Factor::Shape)?) } else { None };
        let (size, size_data, size_cfg) = load(&size_dir, Factor::Size, device)?;
        let (position, pos_data, _) = load(&pos_dir, Factor::Position, device)?;
        // the design's claim is that no model saw a held-out cell: the models must share the mask and the images
        let same_data = |d: &ShapesConfig, dir: &Path| -> Result<()> {
            if *d != size_data {
                return Err(CdError::run_folder(
                    dir,
                    format!(
                        "its data.shapes differ from the size model's in {} ({}): the models must see the same \
                         images, mask included",
                        differing_keys(d, &size_data),
                        size_dir.display()
                    ),
                ));
            }
            Ok(())
        };
        same_data(&pos_data, &pos_dir)?;
        let shape = match shape_dir {
            Some(d) => {
                let (m, data, _) = load(&d, Factor::Shape, device)?;
                same_data(&data, &d)?;
                Some((d, m))
            }
            None => None,
        };
        let shape_in = size.config().input_shape();
        let others = [Some((&pos_dir, &position)), shape.as_ref().map(|s| (&s.0, &s.1))];
        for (dir, m) in others.into_iter().flatten() {
            if m.config().input_shape() != shape_in {
                return Err(CdError::run_folder(
                    dir,
                    format!("its model takes {:?} images, the size model {:?}", m.config().input_shape(), shape_in),
                ));
            }
        }
        let mask = size_data.held_out.clone().expect("checked by load");
        let tol = tolerance(Factor::Size).max(tolerance(Factor::Position)) as f32;
        if mask.radius < tol {
            return Err(CdError::run_folder(
                &size_dir,
                format!(
                    "its held-out regions have radius {}, less than the probe's tolerance {tol}: samples judged right \
                     at a held-out cell could match training images",
                    mask.radius
                ),
            ));
        }
        Ok(Models {
            size: (size_dir, size),
            position: (pos_dir, position),
            shape,
            mask,
            data: size_data.clone(),
            side: shape_in[1],
            supersample: size_data.supersample,
            sampler: size_cfg.sampler.langevin(a.steps),
        })
    }

    fn image_shape(&self) -> Vec<usize> {
        vec![1, self.side, self.side]
    }
}

/// The generator's image of each sprite as `[n, 1, side, side]` in [0, 1].
fn render(sprites: &[Sprite], side: usize, ss: u32, device: &Device) -> Result<Tensor> {
    let ss = ss.max(1);
    let norm = (ss * ss) as f32;
    let v: Vec<f32> = sprites
        .iter()
        .flat_map(|sp| ebm_data::shapes::render(sp, side, ss).into_iter().map(move |c| c as f32 / norm))
        .collect();
    Ok(Tensor::from_vec(v, (sprites.len(), 1, side, side), device)?)
}

fn sprite(shape: Shape, scale: f32, position: [f32; 2]) -> Sprite {
    Sprite { shape, scale, orientation: 0.0, pos_x: position[0], pos_y: position[1] }
}

/// `[n, d]` conditions: each of `rows` repeated `k` times.
fn conds(rows: &[Vec<f32>], k: usize, device: &Device) -> Result<Tensor> {
    let d = rows.first().map_or(0, Vec::len);
    let v: Vec<f32> = rows.iter().flat_map(|r| std::iter::repeat_n(r.iter().copied(), k).flatten()).collect();
    Ok(Tensor::from_vec(v, (rows.len() * k, d), device)?)
}

fn one_hot(shape: Shape) -> Vec<f32> {
    let mut v = vec![0.0; 3];
    v[shape.index()] = 1.0;
    v
}

type Model = Arc<EnergyNet>;

/// Chains of `sum_i E_i(x | c_i)` over `terms` (each model with its `[n, d]` conditions), from noise or `starts`,
/// their noise from `rng` (a fresh one per way of sampling, so that ways compared see the same noise).
fn sample_sum(
    m: &Models,
    terms: &[(&Model, &Tensor)],
    n: usize,
    starts: Option<&Tensor>,
    mut rng: Rng,
    device: &Device,
) -> Result<Tensor> {
    let shape = m.image_shape();
    Ok(chunked(n, &shape, starts, &m.sampler, &mut rng, device, |s, k| {
        let mut ts = Vec::with_capacity(terms.len());
        for (model, c) in terms {
            ts.push(Term::new((*model).clone(), 1.0).with_cond(c.narrow(0, s, k)?));
        }
        Ok(vec![(Box::new(Sum::new(ts)) as Box<dyn Energy>, None, m.sampler.steps)] as Vec<Stage<'static>>)
    })?)
}

fn measure(x: &Tensor) -> Result<Vec<Option<Measurement>>> {
    Ok(probe::measure_batch(x)?)
}

/// (scale error, position error) of each measured sample against its cell (`k` samples per cell, in order),
/// reading scale as the measured shape.
fn pair_errors(ms: &[Option<Measurement>], cells: &[Cell], k: usize) -> Vec<(f64, f64)> {
    ms.iter()
        .enumerate()
        .map(|(i, m)| {
            let c = cells[i / k];
            (
                factor_error(m.as_ref(), Factor::Size, &[c.scale], None),
                factor_error(m.as_ref(), Factor::Position, &c.position, None),
            )
        })
        .collect()
}

fn both_within(errs: &[(f64, f64)], tol: f64) -> f64 {
    score(errs, tol).both_within
}

/// The ranking test, per (cell, shape): the fraction for which the generator's image of the cell has the lowest
/// energy among candidate images of the same shape.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Ranks {
    /// `E_size(x | scale) + E_pos(x | position)` over the images of every grid cell.
    pub composed: f64,
    /// `E_size(x | scale)` over the images of the grid's scales at the cell's position.
    pub size: f64,
    /// `E_pos(x | position)` over the images of the grid's positions at the cell's scale.
    pub position: f64,
}

/// The ranking test of `cells` (see [`Ranks`]).
fn energy_rank(m: &Models, cells: &[Cell], device: &Device) -> Result<Ranks> {
    let grid: Vec<Cell> = m.mask.cells().into_iter().chain(m.mask.seen_cells()).collect();
    let g = grid.len();
    let (mut both, mut size, mut pos) = (0usize, 0usize, 0usize);
    let argmin = |e: &[f32], among: &mut dyn Iterator<Item = usize>| among.min_by(|&i, &j| e[i].total_cmp(&e[j]));
    for &shape in &Shape::ALL {
        let candidates: Vec<Sprite> = grid.iter().map(|c| sprite(shape, c.scale, c.position)).collect();
        let x = render(&candidates, m.side, m.supersample, device)?;
        for c in cells {
            let truth = grid.iter().position(|q| q == c).expect("a grid cell");
            let sc = Tensor::from_vec(vec![c.scale; g], (g, 1), device)?;
            let pc = conds(&[c.position.to_vec()], g, device)?;
            let es = m.size.1.energy(&x, Some(&sc))?.to_vec1::<f32>()?;
            let ep = m.position.1.energy(&x, Some(&pc))?.to_vec1::<f32>()?;
            let e: Vec<f32> = es.iter().zip(&ep).map(|(a, b)| a + b).collect();
            both += (argmin(&e, &mut (0..g)) == Some(truth)) as usize;
            let same_pos = &mut (0..g).filter(|&i| grid[i].position == c.position);
            size += (argmin(&es, same_pos) == Some(truth)) as usize;
            let same_scale = &mut (0..g).filter(|&i| grid[i].scale == c.scale);
            pos += (argmin(&ep, same_scale) == Some(truth)) as usize;
        }
    }
    let n = (cells.len() * Shape::ALL.len()).max(1) as f64;
    Ok(Ranks { composed: both as f64 / n, size: size as f64 / n, position: pos as f64 / n })
}

fn cell_label(c: &Cell) -> String {
    format!("scale {} at ({:.1}, {:.1})", c.scale, c.position[0], c.position[1])
}

/// The first `cols` samples of each block of `k`, with one label per block, as a PNG.
fn rows_png(x: &Tensor, k: usize, cols: usize, labels: &[String], title: &str, path: &Path) -> Result<()> {
    let cols = cols.min(k).max(1);
    let idx: Vec<u32> = (0..labels.len()).flat_map(|r| (0..cols).map(move |j| (r * k + j) as u32)).collect();
    let pick = x.index_select(&Tensor::new(idx.as_slice(), x.device())?, 0)?;
    ebm_eval::figures::image_rows_png(&pick, cols, labels, title, path)?;
    Ok(())
}

/// Samples shown per row of the figures.
const FIGURE_COLS: usize = 8;

/// The size x position experiment (see the module documentation).
pub fn run_pairs(a: &Settings, device: &Device) -> Result<PairsReport> {
    let m = Models::open(a, false, device)?;
    let tol = tolerance(Factor::Size);
    debug_assert_eq!(tol, tolerance(Factor::Position));
    let held = m.mask.cells();
    let seen = m.mask.seen_cells();
    let (k, ks) = (a.samples_per_cell.max(1), a.seen_samples.max(1));
    let (nh, ns) = (held.len() * k, seen.len() * ks);
    tracing::info!(
        "all-factors design: {} held-out cells x {k} chains and {} seen cells x {ks}, {} Langevin steps, composed \
         and each model alone",
        held.len(),
        seen.len(),
        a.steps
    );
    let size_rows = |cells: &[Cell]| cells.iter().map(|c| vec![c.scale]).collect::<Vec<_>>();
    let pos_rows = |cells: &[Cell]| cells.iter().map(|c| c.position.to_vec()).collect::<Vec<_>>();
    let (sh, ph) = (conds(&size_rows(&held), k, device)?, conds(&pos_rows(&held), k, device)?);
    let (ss, ps) = (conds(&size_rows(&seen), ks, device)?, conds(&pos_rows(&seen), ks, device)?);
    let (size, pos) = (&m.size.1, &m.position.1);
    let held_rng = || Rng::with_stream(a.seed, CHAIN_STREAM);
    let seen_rng = || Rng::with_stream(a.seed, SEEN_STREAM);
    let composed_h = sample_sum(&m, &[(size, &sh), (pos, &ph)], nh, None, held_rng(), device)?;
    let size_h = sample_sum(&m, &[(size, &sh)], nh, None, held_rng(), device)?;
    let pos_h = sample_sum(&m, &[(pos, &ph)], nh, None, held_rng(), device)?;
    let truth_sprites: Vec<Sprite> =
        held.iter().flat_map(|c| (0..k).map(move |j| sprite(Shape::ALL[j % 3], c.scale, c.position))).collect();
    let truth = render(&truth_sprites, m.side, m.supersample, device)?;
    let from_truth = sample_sum(&m, &[(size, &sh), (pos, &ph)], nh, Some(&truth), held_rng(), device)?;
    let composed_s = sample_sum(&m, &[(size, &ss), (pos, &ps)], ns, None, seen_rng(), device)?;
    let size_s = sample_sum(&m, &[(size, &ss)], ns, None, seen_rng(), device)?;
    let pos_s = sample_sum(&m, &[(pos, &ps)], ns, None, seen_rng(), device)?;
    let errs_h = |x: &Tensor| -> Result<Vec<(f64, f64)>> { Ok(pair_errors(&measure(x)?, &held, k)) };
    let errs_s = |x: &Tensor| -> Result<Vec<(f64, f64)>> { Ok(pair_errors(&measure(x)?, &seen, ks)) };
    let (ech, esh, eph, eth, efh) =
        (errs_h(&composed_h)?, errs_h(&size_h)?, errs_h(&pos_h)?, errs_h(&truth)?, errs_h(&from_truth)?);
    let (ecs, ess, eps) = (errs_s(&composed_s)?, errs_s(&size_s)?, errs_s(&pos_s)?);
    let mut cells: Vec<CellResult> = held
        .iter()
        .enumerate()
        .map(|(j, c)| {
            let r = j * k..(j + 1) * k;
            CellResult {
                scale: c.scale,
                position: c.position,
                held_out: true,
                samples: k,
                composed: score(&ech[r.clone()], tol),
                size_only: score(&esh[r.clone()], tol),
                position_only: score(&eph[r.clone()], tol),
                composed_from_truth: Some(score(&efh[r], tol)),
            }
        })
        .collect();
    cells.extend(seen.iter().enumerate().map(|(j, c)| {
        let r = j * ks..(j + 1) * ks;
        CellResult {
            scale: c.scale,
            position: c.position,
            held_out: false,
            samples: ks,
            composed: score(&ecs[r.clone()], tol),
            size_only: score(&ess[r.clone()], tol),
            position_only: score(&eps[r], tol),
            composed_from_truth: None,
        }
    }));
    let (hc, hs, hp) = (both_within(&ech, tol), both_within(&esh, tol), both_within(&eph, tol));
    let (held_ranks, seen_ranks) = (energy_rank(&m, &held, device)?, energy_rank(&m, &seen, device)?);
    let report = PairsReport {
        design: "all-factors",
        size_model: m.size.0.display().to_string(),
        position_model: m.position.0.display().to_string(),
        mask: m.mask.clone(),
        held_out_cells: held.clone(),
        tolerance: tol,
        samples_per_cell: k,
        seen_samples: ks,
        steps: a.steps,
        held_out_composed: hc,
        held_out_size_only: hs,
        held_out_position_only: hp,
        held_out_truth: both_within(&eth, tol),
        held_out_composed_from_truth: both_within(&efh, tol),
        seen_composed: both_within(&ecs, tol),
        seen_size_only: both_within(&ess, tol),
        seen_position_only: both_within(&eps, tol),
        held_out_energy_rank: held_ranks.composed,
        held_out_ranks: held_ranks,
        seen_energy_rank: seen_ranks.composed,
        seen_ranks,
        meets_bar: hc >= 0.6 && hc >= 2.0 * hs && hc >= 2.0 * hp && k >= MIN_SAMPLES && held.len() >= MIN_CELLS,
        seed: a.seed,
        cells,
    };
    std::fs::create_dir_all(&a.out).map_err(ebm_cd::error::fs_err(&a.out))?;
    let labels: Vec<String> = held.iter().map(cell_label).collect();
    let seen_labels: Vec<String> = seen.iter().map(cell_label).collect();
    let title = |what: &str| format!("{what}: rows = held-out (scale, position) cells");
    rows_png(&composed_h, k, FIGURE_COLS, &labels, &title("size + position"), &a.out.join("composed.png"))?;
    rows_png(&size_h, k, FIGURE_COLS, &labels, &title("size model alone"), &a.out.join("size_only.png"))?;
    rows_png(&pos_h, k, FIGURE_COLS, &labels, &title("position model alone"), &a.out.join("position_only.png"))?;
    let seen_title = "size + position: rows = seen (scale, position) cells";
    rows_png(&composed_s, ks, FIGURE_COLS, &seen_labels, seen_title, &a.out.join("seen_composed.png"))?;
    ebm_io::write_atomic(&a.out.join("compose_shapes.json"), serde_json::to_string_pretty(&report)?.as_bytes())?;
    Ok(report)
}

/// The position model's mean of `E(x | wrong) - E(x | right)` over the generator's images (64 at each of `a` and
/// `b`, the three shapes, scales over the data's span), wrong and right being `a` and `b`.
fn energy_gap(m: &Models, pos: &Model, a: [f32; 2], b: [f32; 2], device: &Device) -> Result<f64> {
    let n = 64;
    let (lo, hi) = (m.data.scale.lo, m.data.scale.hi);
    let sprites = |p: [f32; 2]| -> Vec<Sprite> {
        (0..n).map(|j| sprite(Shape::ALL[j % 3], lo + (hi - lo) * j as f32 / (n - 1) as f32, p)).collect()
    };
    let mut total = 0.0;
    for (right, wrong) in [(a, b), (b, a)] {
        let x = render(&sprites(right), m.side, m.supersample, device)?;
        let e_right = pos.energy(&x, Some(&conds(&[right.to_vec()], n, device)?))?;
        let e_wrong = pos.energy(&x, Some(&conds(&[wrong.to_vec()], n, device)?))?;
        total += (e_wrong - e_right)?.mean_all()?.to_scalar::<f32>()? as f64;
    }
    Ok(total / 2.0)
}

/// Positions paired for the OR test.
pub const OR_PAIRS: [([f32; 2], [f32; 2]); 2] = [([0.2, 0.2], [0.8, 0.8]), ([0.8, 0.2], [0.2, 0.8])];

/// The shape model's experiments: three-factor composition, NOT and OR (see the module documentation).
pub fn run_shape(a: &Settings, device: &Device) -> Result<ShapeReport> {
    let m = Models::open(a, true, device)?;
    let tol = tolerance(Factor::Position);
    let shape_m = &m.shape.as_ref().expect("opened with the shape model").1;
    let (size, pos) = (&m.size.1, &m.position.1);
    let k = a.samples_per_cell.max(1);
    let held = m.mask.cells();
    // every held-out cell with each shape
    let triples: Vec<(Shape, Cell)> = held.iter().flat_map(|c| Shape::ALL.map(|s| (s, *c))).collect();
    let n = triples.len() * k;
    tracing::info!("all-factors design, shape part: {} held-out triples x {k} chains, NOT and OR", triples.len());
    let sc = conds(&triples.iter().map(|(_, c)| vec![c.scale]).collect::<Vec<_>>(), k, device)?;
    let pc = conds(&triples.iter().map(|(_, c)| c.position.to_vec()).collect::<Vec<_>>(), k, device)?;
    let hc = conds(&triples.iter().map(|(s, _)| one_hot(*s)).collect::<Vec<_>>(), k, device)?;
    let c3 = sample_sum(
        &m,
        &[(size, &sc), (pos, &pc), (shape_m, &hc)],
        n,
        None,
        Rng::with_stream(a.seed, CHAIN_STREAM),
        device,
    )?;
    let c2 = sample_sum(&m, &[(size, &sc), (pos, &pc)], n, None, Rng::with_stream(a.seed, CHAIN_STREAM), device)?;
    let so = sample_sum(&m, &[(shape_m, &hc)], n, None, Rng::with_stream(a.seed, CHAIN_STREAM), device)?;
    let truth_sprites: Vec<Sprite> =
        triples.iter().flat_map(|(s, c)| std::iter::repeat_n(sprite(*s, c.scale, c.position), k)).collect();
    let truth = render(&truth_sprites, m.side, m.supersample, device)?;
    let cells: Vec<Cell> = triples.iter().map(|t| t.1).collect();
    // right = the requested shape, and scale and position within tolerance read as that shape's
    let all_right = |x: &Tensor| -> Result<Vec<(bool, bool)>> {
        let ms = measure(x)?;
        let pe = pair_errors(&ms, &cells, k);
        Ok(ms
            .iter()
            .enumerate()
            .map(|(i, mm)| {
                let want = triples[i / k].0;
                let shape_ok = mm.as_ref().is_some_and(|mm| mm.shape == want);
                (shape_ok && pe[i].0 <= tol && pe[i].1 <= tol, shape_ok)
            })
            .collect())
    };
    let (r3, r2, rs, rt) = (all_right(&c3)?, all_right(&c2)?, all_right(&so)?, all_right(&truth)?);
    let frac = |v: &[(bool, bool)], f: fn(&(bool, bool)) -> bool| {
        v.iter().filter(|x| f(x)).count() as f64 / v.len().max(1) as f64
    };
    let triple_results: Vec<TripleResult> = triples
        .iter()
        .enumerate()
        .map(|(j, (s, c))| {
            let r = j * k..(j + 1) * k;
            TripleResult {
                shape: *s,
                scale: c.scale,
                position: c.position,
                composed3: frac(&r3[r.clone()], |x| x.0),
                composed2: frac(&r2[r.clone()], |x| x.0),
                shape_only: frac(&rs[r.clone()], |x| x.0),
                composed3_shape: frac(&r3[r], |x| x.1),
            }
        })
        .collect();

    // NOT: at each grid position, E_pos(x | p) + BoundedNot(E_shape(x | square)); the margin and softness from the
    // shape model's energies under "square" on the generator's ellipses and hearts (the same data config)
    let positions = m.mask.positions.clone();
    let np = positions.len() * k;
    let pn = conds(&positions.iter().map(|p| p.to_vec()).collect::<Vec<_>>(), k, device)?;
    let not_ref = ShapesConfig { shapes: vec![Shape::Ellipse, Shape::Heart], ..m.data.clone() };
    let refs = not_ref.draw(256, &mut Rng::with_stream(a.seed, NOT_START_STREAM).fork(1));
    let refs = render(&refs, m.side, m.supersample, device)?;
    let e_ref: Vec<f64> = shape_m
        .energy(&refs, Some(&conds(&[one_hot(Shape::Square)], 256, device)?))?
        .to_vec1::<f32>()?
        .into_iter()
        .map(f64::from)
        .collect();
    let margin = e_ref.iter().sum::<f64>() / e_ref.len() as f64;
    let softness = (e_ref.iter().map(|e| (e - margin).powi(2)).sum::<f64>() / e_ref.len() as f64).sqrt().max(1e-6);
    let sq = conds(&[one_hot(Shape::Square)], np, device)?;
    let starts = uniform(np, &m.image_shape(), [0.0, 1.0], &mut Rng::with_stream(a.seed, NOT_START_STREAM), device)?;
    let shape_dyn: Arc<dyn Energy + Send + Sync> = shape_m.clone();
    let pos_dyn: Arc<dyn Energy + Send + Sync> = pos.clone();
    let mut rng = Rng::with_stream(a.seed, NOT_STREAM);
    let not_x = chunked(np, &m.image_shape(), Some(&starts), &m.sampler, &mut rng, device, |s, kk| {
        let parts = [
            NotPart { energy: pos_dyn.clone(), weight: 1.0, cond: Some(pn.narrow(0, s, kk)?), margin: None },
            NotPart { energy: shape_dyn.clone(), weight: -1.0, cond: Some(sq.narrow(0, s, kk)?), margin: Some(margin) },
        ];
        let (e, _) = compose(&parts, ComposeOp::And, Some(softness), &starts.narrow(0, s, kk)?)?;
        Ok(vec![(Box::new(e) as Box<dyn Energy>, None, m.sampler.steps)] as Vec<Stage<'static>>)
    })?;
    let pos_x = sample_sum(&m, &[(pos, &pn)], np, Some(&starts), Rng::with_stream(a.seed, NOT_STREAM), device)?;
    let pcells: Vec<Cell> = positions.iter().map(|&p| Cell { scale: 0.75, position: p }).collect();
    let not_stats = |x: &Tensor| -> Result<Vec<(bool, bool)>> {
        let ms = measure(x)?;
        let pe = pair_errors(&ms, &pcells, k);
        Ok(ms
            .iter()
            .enumerate()
            .map(|(i, mm)| {
                let at = pe[i].1 <= tol;
                (at, at && mm.as_ref().is_some_and(|mm| mm.shape != Shape::Square))
            })
            .collect())
    };
    let (nt, po) = (not_stats(&not_x)?, not_stats(&pos_x)?);
    let not: Vec<NotResult> = positions
        .iter()
        .enumerate()
        .map(|(j, &p)| {
            let r = j * k..(j + 1) * k;
            NotResult {
                position: p,
                at_position_not_square: frac(&nt[r.clone()], |x| x.1),
                position_only_not_square: frac(&po[r.clone()], |x| x.1),
                at_position: frac(&nt[r], |x| x.0),
            }
        })
        .collect();

    // OR: two positions, one mixture energy, 2k chains from noise per pair; plain (T = 1) and sharpened
    let mut or = Vec::new();
    let mut or_images = Vec::new();
    let mut or_labels = Vec::new();
    for (i, &(pa, pb)) in OR_PAIRS.iter().enumerate() {
        let n2 = 2 * k;
        let ca = conds(&[pa.to_vec()], n2, device)?;
        let cb = conds(&[pb.to_vec()], n2, device)?;
        let gap = energy_gap(&m, pos, pa, pb, device)?;
        let sharp = (gap / 4.0).max(1e-3);
        for t in [1.0, sharp] {
            let mut rng = Rng::with_stream(a.seed, OR_STREAM).fork(i as u64);
            let x = chunked(n2, &m.image_shape(), None, &m.sampler, &mut rng, device, |s, kk| {
                let scaled = |c: Tensor| {
                    let inner: Arc<dyn Energy + Send + Sync> =
                        Arc::new(Sum::new(vec![Term::new(pos_dyn.clone(), 1.0 / t)]));
                    Term::new(inner, 1.0).with_cond(c)
                };
                let lse: Arc<dyn Energy + Send + Sync> =
                    Arc::new(LogSumExp::new(vec![scaled(ca.narrow(0, s, kk)?), scaled(cb.narrow(0, s, kk)?)]));
                let e = Sum::new(vec![Term::new(lse, t)]);
                Ok(vec![(Box::new(e) as Box<dyn Energy>, None, m.sampler.steps)] as Vec<Stage<'static>>)
            })?;
            let ms = measure(&x)?;
            let at = |p: [f32; 2]| {
                ms.iter().filter(|mm| factor_error(mm.as_ref(), Factor::Position, &p, None) <= tol).count() as f64
                    / n2 as f64
            };
            let (at_a, at_b) = (at(pa), at(pb));
            let balance = if at_a + at_b > 0.0 { at_a.min(at_b) / (at_a + at_b) } else { 0.0 };
            let both_modes_balanced = at_a + at_b >= 0.5 && balance >= 0.4;
            or.push(OrResult { a: pa, b: pb, temperature: t, gap, at_a, at_b, balance, both_modes_balanced });
            or_images.push(x);
            or_labels.push(format!("({:.1}, {:.1}) OR ({:.1}, {:.1}), T = {:.3}", pa[0], pa[1], pb[0], pb[1], t));
        }
    }

    let report = ShapeReport {
        design: "all-factors",
        size_model: m.size.0.display().to_string(),
        position_model: m.position.0.display().to_string(),
        shape_model: m.shape.as_ref().map(|s| s.0.display().to_string()).unwrap_or_default(),
        mask: m.mask.clone(),
        tolerance: tol,
        samples_per_cell: k,
        steps: a.steps,
        seed: a.seed,
        held_out_composed3: frac(&r3, |x| x.0),
        held_out_composed2: frac(&r2, |x| x.0),
        held_out_shape_only: frac(&rs, |x| x.0),
        held_out_truth: frac(&rt, |x| x.0),
        triples: triple_results,
        not_square: frac(&nt, |x| x.1),
        not_square_position_only: frac(&po, |x| x.1),
        not_margin: margin,
        not_softness: softness,
        not,
        or,
    };
    std::fs::create_dir_all(&a.out).map_err(ebm_cd::error::fs_err(&a.out))?;
    let labels: Vec<String> = triples.iter().map(|(s, c)| format!("{} {}", s.name(), cell_label(c))).collect();
    let t3 = "size + position + shape: rows = held-out (shape, scale, position) triples";
    rows_png(&c3, k, FIGURE_COLS, &labels, t3, &a.out.join("triples.png"))?;
    let plabels: Vec<String> =
        positions.iter().map(|p| format!("at ({:.1}, {:.1}) AND NOT square", p[0], p[1])).collect();
    rows_png(&not_x, k, FIGURE_COLS, &plabels, "position AND NOT square", &a.out.join("not_square.png"))?;
    let or_x = Tensor::cat(&or_images, 0)?;
    rows_png(&or_x, 2 * k, 2 * FIGURE_COLS, &or_labels, "position A OR position B", &a.out.join("or.png"))?;
    ebm_io::write_atomic(&a.out.join("compose_shapes_shape.json"), serde_json::to_string_pretty(&report)?.as_bytes())?;
    Ok(report)
}

impl PairsReport {
    /// What a user reads at the end of the pairs part.
    pub fn summary(&self, out: &Path) -> String {
        format!(
            "all-factors design, {} held-out (scale, position) cells x {} samples (scale and position within {}): \
             composed {:.1}%, size model alone {:.1}%, position model alone {:.1}% -> {}; seen cells: composed \
             {:.1}%; composed chains from the true images {:.1}%, the true images themselves {:.1}%; the composed \
             energy ranks the true image first for {:.1}% of held-out (cell, shape), {:.1}% of seen\n  outputs in \
             {}: composed.png (rows: held-out cells), size_only.png, position_only.png, seen_composed.png, \
             compose_shapes.json",
            self.held_out_cells.len(),
            self.samples_per_cell,
            self.tolerance,
            100.0 * self.held_out_composed,
            100.0 * self.held_out_size_only,
            100.0 * self.held_out_position_only,
            if self.meets_bar { "meets the bar (>= 60% and >= 2x each single model)" } else { "below the bar" },
            100.0 * self.seen_composed,
            100.0 * self.held_out_composed_from_truth,
            100.0 * self.held_out_truth,
            100.0 * self.held_out_energy_rank,
            100.0 * self.seen_energy_rank,
            out.display()
        )
    }
}

impl ShapeReport {
    /// What a user reads at the end of the shape part.
    pub fn summary(&self, out: &Path) -> String {
        let or: Vec<String> = self
            .or
            .iter()
            .map(|o| {
                format!(
                    "{:?} {:.1}% / {:?} {:.1}% at T = {:.3}",
                    o.a,
                    100.0 * o.at_a,
                    o.b,
                    100.0 * o.at_b,
                    o.temperature
                )
            })
            .collect();
        format!(
            "all-factors design, shape part: held-out (shape, scale, position) triples all three right: three models \
             {:.1}%, size + position {:.1}%, shape model alone {:.1}% (true images {:.1}%); position AND NOT square: \
             {:.1}% at the position and not square (position model alone {:.1}%); OR: {}\n  outputs in {}: \
             triples.png, not_square.png, or.png, compose_shapes_shape.json",
            100.0 * self.held_out_composed3,
            100.0 * self.held_out_composed2,
            100.0 * self.held_out_shape_only,
            100.0 * self.held_out_truth,
            100.0 * self.not_square,
            100.0 * self.not_square_position_only,
            or.join("; "),
            out.display()
        )
    }
}
