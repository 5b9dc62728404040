//! A seeded generator of dSprites-like images: one white sprite (square, ellipse or heart) on black, with a known
//! scale, orientation and position, at any side (64 as dSprites, 32 for CPU-sized experiments).
//!
//! The sets carry their factors as [`Latents`] named exactly as dSprites' ([`crate::dsprites::FACTORS`]: color,
//! shape 1..3, scale, orientation, pos_x, pos_y), so [`crate::dsprites::Factor`] builds their condition vectors
//! as it does for the real release, and a model trained on either takes the same conditions.
//!
//! # Geometry (all in units of the image side, so a 32 and a 64 image of the same sprite look alike)
//!
//! - The sprite's size is `L = scale · BASE_SIZE · side` pixels: a square has side `L`, the ellipse semi-axes
//!   `0.7 L` and `0.35 L` (aspect 2:1, major axis along x at orientation 0), the heart (the curve
//!   `(x² + y² - 1)³ ≤ x² y³`, lobes up, tip down) is about `1.04 L` wide.
//! - The sprite's *area centroid* sits at pixel `(MARGIN + (1 - 2 MARGIN) · pos) · side` on each axis, with `pos_x`
//!   growing to the right and `pos_y` growing downward (row order, as dSprites' images are stored), both in
//!   `[0, 1]`. Using the centroid (not a bounding box) makes position exactly what the first moments measure.
//! - Orientation `θ` turns the sprite counter-clockwise as seen in the image.
//! - A pixel's value is the fraction of `s x s` sub-pixel points inside the sprite (`supersample = s`), stored as
//!   `s²+1` grey levels. `supersample = 1` gives binary images as dSprites'; the default 4 anti-aliases the edges,
//!   so scale and position change the pixels continuously and a moment probe measures them to a fraction of a
//!   pixel even at 32x32.
//!
//! Unlike dSprites' fixed grid of values (6 scales, 40 orientations, 32x32 positions), factors are drawn uniformly
//! from a [`Span`] per factor (or fixed, when the span is a single value), which is how a [`ShapesConfig`] states a
//! slice such as "size varies, position fixed".

use crate::cells::HeldOut;
use crate::dsprites::FACTORS;
use crate::error::{DataError, Result};
use crate::images::ImageSet;
use crate::latents::Latents;
use ebm_kernels::Rng;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// Sprite size at scale 1, as a fraction of the image side.
pub const BASE_SIZE: f64 = 0.3;
/// Distance of the extreme centroid positions (pos 0 and 1) from the image border, as a fraction of the side.
pub const MARGIN: f64 = 0.2;

/// The three dSprites shapes, in dSprites' order (its `shape` latent is this index + 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    Square,
    Ellipse,
    Heart,
}

impl Shape {
    /// All three, in label order.
    pub const ALL: [Shape; 3] = [Shape::Square, Shape::Ellipse, Shape::Heart];

    /// The label (0 square, 1 ellipse, 2 heart), as the dSprites loader labels its images.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The shape with label `i`.
    pub fn from_index(i: usize) -> Option<Shape> {
        Shape::ALL.get(i).copied()
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Square => "square",
            Shape::Ellipse => "ellipse",
            Shape::Heart => "heart",
        }
    }

    /// Order of the rotational symmetry: the orientation is only defined modulo `2π / symmetry()`.
    pub fn symmetry(self) -> u32 {
        match self {
            Shape::Square => 4,
            Shape::Ellipse => 2,
            Shape::Heart => 1,
        }
    }

    /// Whether the point `(u, v)` (x right, y up, in units of the sprite size `L`, origin at the area centroid,
    /// orientation 0) is inside the shape.
    pub fn contains(self, u: f64, v: f64) -> bool {
        match self {
            Shape::Square => u.abs() <= 0.5 && v.abs() <= 0.5,
            Shape::Ellipse => (u / 0.7).powi(2) + (v / 0.35).powi(2) <= 1.0,
            Shape::Heart => heart_raw(u * HEART_ZOOM, v * HEART_ZOOM + heart_geometry().centroid_y),
        }
    }

    /// Area in units of `L²` (exact for square and ellipse, a fine numerical integral for the heart).
    pub fn area(self) -> f64 {
        match self {
            Shape::Square => 1.0,
            Shape::Ellipse => std::f64::consts::PI * 0.7 * 0.35,
            Shape::Heart => heart_geometry().area,
        }
    }

    /// A radius (in units of `L`) outside which no point of the shape lies, whatever its orientation.
    pub fn radius(self) -> f64 {
        match self {
            Shape::Square => std::f64::consts::FRAC_1_SQRT_2,
            Shape::Ellipse => 0.7,
            Shape::Heart => 0.75,
        }
    }
}

/// Heart-curve units per unit of `L`: the raw curve is 2.28 wide, so the heart is about `1.04 L` wide.
const HEART_ZOOM: f64 = 2.2;

/// The raw heart `(x² + y² - 1)³ - x² y³ ≤ 0` (lobes up).
fn heart_raw(x: f64, y: f64) -> bool {
    let a = x * x + y * y - 1.0;
    a * a * a - x * x * y * y * y <= 0.0
}

struct HeartGeometry {
    /// The raw curve's area centroid height (it is symmetric in x).
    centroid_y: f64,
    /// Area in units of `L²`.
    area: f64,
}

/// The heart's centroid and area, integrated once on a 2000x2000 grid over the raw curve's bounding box.
fn heart_geometry() -> &'static HeartGeometry {
    static G: OnceLock<HeartGeometry> = OnceLock::new();
    G.get_or_init(|| {
        let (n, lo, hi) = (2000usize, -1.5f64, 1.5f64);
        let h = (hi - lo) / n as f64;
        let (mut count, mut sum_y) = (0u64, 0.0f64);
        for i in 0..n {
            let y = lo + (i as f64 + 0.5) * h;
            for j in 0..n {
                let x = lo + (j as f64 + 0.5) * h;
                if heart_raw(x, y) {
                    count += 1;
                    sum_y += y;
                }
            }
        }
        let raw_area = count as f64 * h * h;
        HeartGeometry { centroid_y: sum_y / count as f64, area: raw_area / (HEART_ZOOM * HEART_ZOOM) }
    })
}

/// One sprite's factors, in dSprites' units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sprite {
    pub shape: Shape,
    /// Relative size (dSprites: 0.5..1).
    pub scale: f32,
    /// Radians, counter-clockwise.
    pub orientation: f32,
    /// Horizontal position in [0, 1], left to right.
    pub pos_x: f32,
    /// Vertical position in [0, 1], top to bottom.
    pub pos_y: f32,
}

impl Sprite {
    /// The latents row in [`FACTORS`] order (color is always 1).
    pub fn latents(&self) -> [f32; 6] {
        [1.0, (self.shape.index() + 1) as f32, self.scale, self.orientation, self.pos_x, self.pos_y]
    }

    /// The sprite a latents row in [`FACTORS`] order describes (`None` if its shape is not 1, 2 or 3).
    pub fn from_latents(row: &[f32]) -> Option<Sprite> {
        let shape = Shape::from_index((row.get(1)?.round() as usize).checked_sub(1)?)?;
        Some(Sprite { shape, scale: row[2], orientation: row[3], pos_x: row[4], pos_y: row[5] })
    }
}

/// The pixel coordinate (in pixels from the top-left corner, pixel `j` spanning `[j, j+1)`) of position `pos` on
/// an image of `side` pixels.
pub fn pos_to_pixel(pos: f64, side: usize) -> f64 {
    (MARGIN + (1.0 - 2.0 * MARGIN) * pos) * side as f64
}

/// The position whose pixel coordinate is `px` (the inverse of [`pos_to_pixel`]).
pub fn pixel_to_pos(px: f64, side: usize) -> f64 {
    (px / side as f64 - MARGIN) / (1.0 - 2.0 * MARGIN)
}

/// The sprite size `L` in pixels at `scale` on an image of `side` pixels.
pub fn size_px(scale: f64, side: usize) -> f64 {
    scale * BASE_SIZE * side as f64
}

/// Renders `sprite` on a `side x side` image: each pixel counts the sub-pixel points inside the sprite, `0..=s²`
/// for `supersample = s` (row-major, one channel).
pub fn render(sprite: &Sprite, side: usize, supersample: u32) -> Vec<u8> {
    let s = supersample.max(1) as usize;
    let mut out = vec![0u8; side * side];
    let l = size_px(sprite.scale as f64, side);
    if l <= 0.0 {
        return out;
    }
    let (cx, cy) = (pos_to_pixel(sprite.pos_x as f64, side), pos_to_pixel(sprite.pos_y as f64, side));
    let (sin, cos) = (sprite.orientation as f64).sin_cos();
    let r = sprite.shape.radius() * l + 1.0;
    let clip = |v: f64| v.floor().clamp(0.0, side as f64) as usize;
    let (i0, i1, j0, j1) = (clip(cy - r), clip(cy + r + 1.0), clip(cx - r), clip(cx + r + 1.0));
    for i in i0..i1 {
        for j in j0..j1 {
            let mut count = 0u8;
            for a in 0..s {
                let py = i as f64 + (a as f64 + 0.5) / s as f64;
                let dy = cy - py; // up
                for b in 0..s {
                    let dx = j as f64 + (b as f64 + 0.5) / s as f64 - cx;
                    // turn the point by -θ into the sprite's own frame
                    let (u, v) = (cos * dx + sin * dy, -sin * dx + cos * dy);
                    count += sprite.shape.contains(u / l, v / l) as u8;
                }
            }
            out[i * side + j] = count;
        }
    }
    out
}

/// The values a factor takes in a generated set: `[lo, hi]` drawn uniformly, or `lo` always when `lo == hi`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "[f32; 2]", into = "[f32; 2]")]
pub struct Span {
    pub lo: f32,
    pub hi: f32,
}

impl From<[f32; 2]> for Span {
    fn from(v: [f32; 2]) -> Self {
        Span { lo: v[0], hi: v[1] }
    }
}

impl From<Span> for [f32; 2] {
    fn from(s: Span) -> Self {
        [s.lo, s.hi]
    }
}

impl Span {
    /// Always `v`.
    pub fn fixed(v: f32) -> Span {
        Span { lo: v, hi: v }
    }

    /// Whether `v` is a value of this span (within `tol`).
    pub fn contains(&self, v: f32, tol: f32) -> bool {
        v >= self.lo - tol && v <= self.hi + tol
    }

    fn draw(&self, rng: &mut Rng) -> f32 {
        if self.lo == self.hi {
            self.lo
        } else {
            self.lo + (self.hi - self.lo) * rng.uniform()
        }
    }
}

/// What a generated set holds: the image side, how many images, and each factor's [`Span`] (a slice of the
/// factor space). The presets of the compositionality experiment are [`ShapesConfig::size_varies`] and
/// [`ShapesConfig::position_varies`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShapesConfig {
    /// Image side in pixels (64 as dSprites; 32 for CPU runs).
    pub side: usize,
    /// Training images.
    pub train: usize,
    /// Test images (drawn from the same slice with another stream).
    pub test: usize,
    /// Sub-pixel points per axis (1: binary images as dSprites; see the module documentation).
    pub supersample: u32,
    /// Shapes drawn uniformly from this list.
    pub shapes: Vec<Shape>,
    pub scale: Span,
    /// Radians.
    pub orientation: Span,
    pub pos_x: Span,
    pub pos_y: Span,
    /// Seed of the factor draws (the images are a pure function of this config).
    pub seed: u64,
    /// (scale, position) regions no sprite of either split may lie in (redrawn when one does): the held-out
    /// combinations of the all-factors composition experiment. None: every combination occurs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_out: Option<HeldOut>,
}

impl Default for ShapesConfig {
    /// Every factor varies (dSprites' ranges: scale 0.5..1, any orientation, any position), all three shapes,
    /// 32x32, 4x4 supersampling.
    fn default() -> Self {
        ShapesConfig {
            side: 32,
            train: 10000,
            test: 1000,
            supersample: 4,
            shapes: Shape::ALL.to_vec(),
            scale: Span { lo: 0.5, hi: 1.0 },
            orientation: Span { lo: 0.0, hi: std::f32::consts::TAU },
            pos_x: Span { lo: 0.0, hi: 1.0 },
            pos_y: Span { lo: 0.0, hi: 1.0 },
            seed: 0,
            held_out: None,
        }
    }
}

impl ShapesConfig {
    /// The size model's slice: squares at orientation 0 in the centre, scale 0.5..1.
    pub fn size_varies() -> Self {
        ShapesConfig {
            shapes: vec![Shape::Square],
            orientation: Span::fixed(0.0),
            pos_x: Span::fixed(0.5),
            pos_y: Span::fixed(0.5),
            ..Default::default()
        }
    }

    /// The position model's slice: squares at orientation 0 of scale 0.75, anywhere.
    pub fn position_varies() -> Self {
        ShapesConfig {
            shapes: vec![Shape::Square],
            orientation: Span::fixed(0.0),
            scale: Span::fixed(0.75),
            ..Default::default()
        }
    }

    /// Every shape at scale 0.75, orientation 0, in the centre.
    pub fn shape_varies() -> Self {
        ShapesConfig {
            scale: Span::fixed(0.75),
            orientation: Span::fixed(0.0),
            pos_x: Span::fixed(0.5),
            pos_y: Span::fixed(0.5),
            ..Default::default()
        }
    }

    /// Hearts of scale 0.75 in the centre at any orientation (the heart is the shape without rotational symmetry).
    pub fn rotation_varies() -> Self {
        ShapesConfig {
            shapes: vec![Shape::Heart],
            scale: Span::fixed(0.75),
            pos_x: Span::fixed(0.5),
            pos_y: Span::fixed(0.5),
            ..Default::default()
        }
    }

    /// Grey levels of the images (`supersample² + 1`).
    pub fn levels(&self) -> u16 {
        let s = self.supersample.max(1) as u16;
        s * s + 1
    }

    fn check(&self) -> Result<()> {
        let bad = |d: String| Err(DataError::invalid("shapes", d));
        if self.side < 8 {
            return bad(format!("side {} is too small (at least 8)", self.side));
        }
        if !(1..=15).contains(&self.supersample) {
            return bad(format!("supersample {} must be in 1..=15 (at most 256 grey levels)", self.supersample));
        }
        if self.shapes.is_empty() {
            return bad("no shape to draw".into());
        }
        for (name, s) in
            [("scale", self.scale), ("orientation", self.orientation), ("pos_x", self.pos_x), ("pos_y", self.pos_y)]
        {
            if !(s.lo.is_finite() && s.hi.is_finite() && s.lo <= s.hi) {
                return bad(format!("{name} span [{}, {}] must be finite with lo <= hi", s.lo, s.hi));
            }
        }
        if self.scale.lo <= 0.0 {
            return bad(format!("scale must be positive, got {}", self.scale.lo));
        }
        if let Some(h) = &self.held_out {
            h.check()?;
            // a slice the mask covers (nearly) whole would make the redraws of `draw` spin
            let mut rng = Rng::new(self.seed).fork(3);
            let regions = h.regions();
            let kept = (0..1000).filter(|_| !regions.excludes_sprite(&self.draw_one(&mut rng))).count();
            if kept < 100 {
                return bad(format!(
                    "held_out removes {:.0}% of the slice's sprites (at most 90%: narrow its radius or widen the \
                     slice)",
                    100.0 - kept as f64 / 10.0
                ));
            }
        }
        Ok(())
    }

    fn draw_one(&self, rng: &mut Rng) -> Sprite {
        let shape = self.shapes[rng.below(self.shapes.len() as u64) as usize];
        Sprite {
            shape,
            scale: self.scale.draw(rng),
            orientation: self.orientation.draw(rng),
            pos_x: self.pos_x.draw(rng),
            pos_y: self.pos_y.draw(rng),
        }
    }

    /// `n` sprites drawn from the slice with `rng` (shape, scale, orientation, x, y, in that order per sprite),
    /// each redrawn while it lies in a [`ShapesConfig::held_out`] region (a config that passed its check keeps
    /// at least a tenth of the slice, so the redraws end).
    pub fn draw(&self, n: usize, rng: &mut Rng) -> Vec<Sprite> {
        let regions = self.held_out.as_ref().map(HeldOut::regions);
        (0..n)
            .map(|_| loop {
                let sp = self.draw_one(rng);
                if !regions.as_ref().is_some_and(|r| r.excludes_sprite(&sp)) {
                    break sp;
                }
            })
            .collect()
    }

    /// The train and test sets of this slice, named `{name}-train` and `{name}-test`.
    pub fn generate(&self, name: &str) -> Result<(ImageSet, ImageSet)> {
        self.check()?;
        let rng = Rng::new(self.seed);
        let train = self.draw(self.train, &mut rng.fork(1));
        let test = self.draw(self.test, &mut rng.fork(2));
        Ok((
            render_set(&format!("{name}-train"), &train, self.side, self.supersample)?,
            render_set(&format!("{name}-test"), &test, self.side, self.supersample)?,
        ))
    }
}

/// A set of the given sprites: `[1, side, side]` images with `supersample² + 1` grey levels, the shape index as
/// label (3 classes), and the factors as [`Latents`] named [`FACTORS`].
pub fn render_set(name: &str, sprites: &[Sprite], side: usize, supersample: u32) -> Result<ImageSet> {
    use rayon::prelude::*;
    let s = supersample.max(1);
    if s > 15 {
        return Err(DataError::invalid(name, format!("supersample {s} must be at most 15")));
    }
    let images: Vec<Vec<u8>> = sprites.par_iter().map(|sp| render(sp, side, s)).collect();
    let pixels = images.concat();
    let labels = sprites.iter().map(|sp| sp.shape.index() as u32).collect();
    let latents = Latents::new(
        FACTORS.iter().map(|f| f.to_string()).collect(),
        sprites.iter().flat_map(|sp| sp.latents()).collect(),
    )?;
    ImageSet::new(name, pixels, (s * s + 1) as u16, [1, side, side], labels, 3)?.with_latents(latents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsprites::Factor;

    #[test]
    fn areas_and_centroids_match_the_geometry() {
        // The rendered area (sum of coverages) and centroid agree with the analytic ones to a small fraction.
        for shape in Shape::ALL {
            let sp = Sprite { shape, scale: 1.0, orientation: 0.7, pos_x: 0.3, pos_y: 0.6 };
            let side = 128;
            let img = render(&sp, side, 4);
            let (mut a, mut mx, mut my) = (0.0, 0.0, 0.0);
            for i in 0..side {
                for j in 0..side {
                    let w = img[i * side + j] as f64 / 16.0;
                    a += w;
                    mx += w * (j as f64 + 0.5);
                    my += w * (i as f64 + 0.5);
                }
            }
            let l = size_px(1.0, side);
            let want = shape.area() * l * l;
            assert!((a / want - 1.0).abs() < 0.01, "{shape:?}: area {a} vs {want}");
            assert!((mx / a - pos_to_pixel(0.3, side)).abs() < 0.05, "{shape:?}: x {}", mx / a);
            assert!((my / a - pos_to_pixel(0.6, side)).abs() < 0.05, "{shape:?}: y {}", my / a);
        }
    }

    #[test]
    fn slices_fix_what_they_say_and_sets_carry_dsprites_latents() {
        let cfg = ShapesConfig { train: 50, test: 10, ..ShapesConfig::size_varies() };
        let (train, test) = cfg.generate("size").unwrap();
        assert_eq!((train.len(), test.len()), (50, 10));
        assert_eq!(train.shape(), [1, 32, 32]);
        assert_eq!(train.levels(), 17);
        let lat = train.latents().unwrap();
        assert_eq!(lat.names(), FACTORS);
        let scales: Vec<f32> = (0..50).map(|i| lat.row(i)[2]).collect();
        assert!(scales.iter().all(|s| (0.5..=1.0).contains(s)));
        assert!(scales.iter().any(|&s| s < 0.6) && scales.iter().any(|&s| s > 0.9), "scale varies");
        assert!((0..50).all(|i| lat.row(i)[4] == 0.5 && lat.row(i)[5] == 0.5 && lat.row(i)[1] == 1.0));
        // conditions come out of dsprites::Factor as for the real data
        let c = Factor::Size.batch(&train, &[0, 1]).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(c, vec![vec![scales[0]], vec![scales[1]]]);
        // same config, same images; another seed, others
        assert_eq!(cfg.generate("size").unwrap().0, train);
        assert_ne!(ShapesConfig { seed: 1, ..cfg.clone() }.generate("size").unwrap().0, train);
        // a position slice varies x and y and fixes the scale
        let (p, _) = ShapesConfig { train: 50, test: 1, ..ShapesConfig::position_varies() }.generate("pos").unwrap();
        let l = p.latents().unwrap();
        assert!((0..50).all(|i| l.row(i)[2] == 0.75));
        assert!((0..50).any(|i| l.row(i)[4] < 0.2) && (0..50).any(|i| l.row(i)[5] > 0.8));
    }

    #[test]
    fn binary_rendering_and_bad_configs() {
        let (b, _) = ShapesConfig { train: 5, test: 1, supersample: 1, ..Default::default() }.generate("b").unwrap();
        assert_eq!(b.levels(), 2);
        assert!(b.pixels().iter().all(|&p| p <= 1) && b.pixels().contains(&1));
        let e = ShapesConfig { scale: Span { lo: 1.0, hi: 0.5 }, ..Default::default() }.generate("x").unwrap_err();
        assert!(e.to_string().contains("scale span"), "{e}");
        let e = ShapesConfig { shapes: vec![], ..Default::default() }.generate("x").unwrap_err();
        assert!(e.to_string().contains("no shape"), "{e}");
    }

    #[test]
    fn held_out_cells_are_absent_from_both_splits_and_every_scale_and_position_remains() {
        let h = HeldOut::composition_grid(7);
        let cfg = ShapesConfig { train: 3000, test: 300, held_out: Some(h.clone()), ..Default::default() };
        let (train, test) = cfg.generate("all").unwrap();
        for set in [&train, &test] {
            let lat = set.latents().unwrap();
            for i in 0..set.len() {
                let r = lat.row(i);
                for c in h.cells() {
                    let near = (r[2] - c.scale).abs() <= 0.1
                        && (r[4] - c.position[0]).abs() <= 0.1
                        && (r[5] - c.position[1]).abs() <= 0.1;
                    assert!(!near, "{} image {i} ({r:?}) lies in held-out cell {c:?}", set.name());
                }
            }
        }
        // every grid scale occurs (at some position) and every grid position (at some scale), within 0.05
        let lat = train.latents().unwrap();
        let rows: Vec<&[f32]> = (0..train.len()).map(|i| lat.row(i)).collect();
        for s in &h.scales {
            assert!(rows.iter().filter(|r| (r[2] - s).abs() <= 0.05).count() > 50, "scale {s}");
        }
        for p in &h.positions {
            let near = |r: &&&[f32]| (r[4] - p[0]).abs() <= 0.05 && (r[5] - p[1]).abs() <= 0.05;
            assert!(rows.iter().filter(near).count() > 10, "position {p:?}");
            // and at a held-out position, the scales of its kept cells
            for c in h.seen_cells().iter().filter(|c| c.position == *p) {
                let n = rows.iter().filter(near).filter(|r| (r[2] - c.scale).abs() <= 0.1).count();
                assert!(n > 0, "seen cell {c:?} has no image");
            }
        }
        // without the mask, the same seed draws images inside the cells
        let (free, _) = ShapesConfig { held_out: None, ..cfg.clone() }.generate("all").unwrap();
        let fl = free.latents().unwrap();
        assert!((0..free.len()).any(|i| h.excludes(fl.row(i)[2], fl.row(i)[4], fl.row(i)[5])));
        // a mask that covers the whole slice is refused instead of spinning
        let c = h.cells()[0];
        let inside = ShapesConfig {
            scale: Span::fixed(c.scale),
            pos_x: Span::fixed(c.position[0]),
            pos_y: Span::fixed(c.position[1]),
            held_out: Some(h),
            ..cfg
        };
        let e = inside.generate("x").unwrap_err();
        assert!(e.to_string().contains("removes"), "{e}");
    }
}
