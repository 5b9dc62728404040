//! `cargo xtask bench`: the Langevin step and the training iteration of the benchmark models, timed exactly as
//! the training loop runs them, against PyTorch (../shared/bench/torch_reference.py) and against candle's own
//! convolution (the "before" column), printed as one markdown table with the machine's measured peak.
//!
//! Our side, per model:
//! - forward: `energy` with the weights frozen (no graph);
//! - langevin_step: `Energy::energy_and_grad` then the fused `langevin_update_` (noise, clipped step, clamp),
//!   weights spectrally normalised once and frozen (`refresh`, `set_frozen(true)`), as during sampling;
//! - train_iteration: `refresh`, `set_frozen(true)`, fresh uniform negatives, `steps` Langevin steps,
//!   `set_frozen(false)`, energies of positives and negatives, the CD loss
//!   `mean(E+) - mean(E-) + mean(E+^2) + mean(E-^2)`, backward, the gradient norm and one step of the training
//!   crate's own optimizer (`ebm_cd::cd::update` with `ebm_cd::optim::Adam`: the official Adam, beta1 0, with its
//!   per-element gradient clip) on every trainable parameter.
//!
//! Times are medians of `--reps` runs after two warm-up runs (PyTorch's script does the same); beside each of ours,
//! the peak resident set of the process while it ran.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use ebm_kernels::{langevin_update_, LangevinUpdate, Rng};
use ebm_models::ops::{self, ConvBackend};
use ebm_models::{EnergyNet, MnistNetConfig, ModelConfig, ResNet32Config};
use ebm_sampler::Energy;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// A Python interpreter with torch: adds the PyTorch column (e.g. /tmp/torchref/bin/python).
    #[arg(long)]
    pub torch: Option<PathBuf>,
    /// The PyTorch reference script.
    #[arg(long, default_value = "../shared/bench/torch_reference.py")]
    pub torch_script: PathBuf,
    /// Models, comma-separated: mnist (MnistNet, batch 64), resnet32 (ResNet32, 64 filters, 10 classes, batch 32).
    #[arg(long, value_delimiter = ',', default_value = "mnist,resnet32")]
    pub models: Vec<String>,
    /// Timed runs per measurement (after two warm-up runs); the median is reported.
    #[arg(long, default_value_t = 7)]
    pub reps: usize,
    /// Langevin steps per training iteration.
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Threads on both sides (RAYON_NUM_THREADS for us, torch.set_num_threads for PyTorch).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Threads of candle's own elementwise pool (CANDLE_NUM_THREADS), unless that variable is set. Its workers
    /// spin between ops and compete with the convolution threads: on 2 cores, 1 (no pool) measured 2-3x faster
    /// Langevin steps under load.
    #[arg(long, default_value_t = 1)]
    pub candle_threads: usize,
    /// Timed runs with candle's own convolution (the "before" column); 0 skips it.
    #[arg(long, default_value_t = 3)]
    pub baseline_reps: usize,
    /// Also write every measurement as one JSON object per line to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The benchmark models of the issue, matching torch_reference.py's shapes.
#[derive(Debug, Clone, Copy)]
struct Model {
    name: &'static str,
    batch: usize,
    filters: usize,
    classes: usize,
    shape: [usize; 3],
}

impl Model {
    fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "mnist" => Model { name: "mnist", batch: 64, filters: 64, classes: 0, shape: [1, 28, 28] },
            "resnet32" => Model { name: "resnet32", batch: 32, filters: 64, classes: 10, shape: [3, 32, 32] },
            other => bail!("unknown model `{other}` (mnist, resnet32)"),
        })
    }

    fn config(&self) -> ModelConfig {
        match self.name {
            "mnist" => ModelConfig::MnistNet(MnistNetConfig { filters: self.filters, ..Default::default() }),
            _ => ModelConfig::ResNet32(ResNet32Config {
                filters: self.filters,
                classes: self.classes,
                ..Default::default()
            }),
        }
    }

    /// Multiply-adds of the stem conv (whose input gradient training does not need).
    fn stem_macs(&self) -> u64 {
        let [c, h, w] = self.shape;
        let cout = if self.name == "mnist" { 64 } else { self.filters };
        (self.batch * cout * h * w * c * 9) as u64
    }

    fn torch_args(&self) -> Vec<String> {
        let mut a = vec!["--model".into(), self.name.into(), "--batch".into(), self.batch.to_string()];
        if self.name != "mnist" {
            a.extend(["--filters".into(), self.filters.to_string(), "--classes".into(), self.classes.to_string()]);
        }
        a
    }
}

/// One line of the results table.
struct Row {
    model: &'static str,
    what: &'static str,
    base: Option<f64>,
    ours: f64,
    peak_mb: Option<f64>,
    torch: Option<f64>,
    gflop: f64,
}

const WHATS: [&str; 3] = ["forward", "langevin_step", "train_iteration"];

/// Median of `reps` timed runs after two warm-up runs, in ms.
fn timed(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    f()?;
    let mut ts = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        f()?;
        ts.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ts.sort_by(|a, b| a.total_cmp(b));
    Ok(ts[ts.len() / 2])
}

/// Resets the kernel's record of this process's peak resident set (Linux: `5` into /proc/self/clear_refs), so the
/// next [`peak_rss_mb`] reports the peak of what runs in between. False where that is not possible.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// This process's peak resident set since the last [`reset_peak_rss`] (or since it started), in MB (VmHWM).
fn peak_rss_mb() -> Option<f64> {
    let status = read("/proc/self/status");
    let kb: f64 = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0 / 1e6)
}

/// One measurement: the median time in ms and the process's peak resident set in MB while it ran (warm-up
/// included; the model, its inputs and the allocator's retained memory count, since they are resident too).
#[derive(Debug, Clone, Copy)]
struct Measured {
    ms: f64,
    peak_mb: Option<f64>,
}

fn measured(reps: usize, f: impl FnMut() -> Result<()>) -> Result<Measured> {
    let reset = reset_peak_rss();
    let ms = timed(reps, f)?;
    Ok(Measured { ms, peak_mb: if reset { peak_rss_mb() } else { None } })
}

/// Our three measurements of `m` with the current conv backend, and the conv multiply-adds of one forward pass.
fn measure_ours(m: &Model, reps: usize, steps: usize) -> Result<(BTreeMap<&'static str, Measured>, u64)> {
    let dev = Device::Cpu;
    let mut rng = Rng::new(0);
    let mut net = EnergyNet::new(m.config(), &mut rng, &dev)?;
    let [c, h, w] = m.shape;
    let n = m.batch * c * h * w;
    let x = Tensor::from_vec(rng.uniform_vec(n, 0.0, 1.0), (m.batch, c, h, w), &dev)?;
    let cond = if m.classes > 0 {
        let labels: Vec<u32> = (0..m.batch).map(|_| rng.below(m.classes as u64) as u32).collect();
        Some(Tensor::from_vec(labels, m.batch, &dev)?)
    } else {
        None
    };
    let cond = cond.as_ref();
    let mut out = BTreeMap::new();

    net.refresh()?;
    net.set_frozen(true);
    let macs0 = ops::conv_macs();
    net.energy(&x, cond)?;
    let fwd_macs = ops::conv_macs() - macs0;
    out.insert(
        "forward",
        measured(reps, || {
            net.energy(&x, cond)?.to_dtype(DType::F32)?.sum_all()?.to_scalar::<f32>()?;
            Ok(())
        })?,
    );

    let xs = x.copy()?;
    let mut k = 0u64;
    out.insert(
        "langevin_step",
        measured(reps, || {
            let (_, g) = net.energy_and_grad(&xs, cond)?;
            langevin_update_(&xs, Some(&g), None, &LangevinUpdate { step: k, ..Default::default() })?;
            k += 1;
            Ok(())
        })?,
    );
    net.set_frozen(false);

    // the training crate's own optimizer (the official Adam: beta1 0, beta2 0.999, eps 1e-8, per-element clip)
    let mut opt = ebm_cd::optim::Adam::new(net.params().trainable(), ebm_cd::optim::AdamConfig::default())?;
    let mut it = 0u64;
    out.insert(
        "train_iteration",
        measured(reps, || {
            net.refresh()?;
            net.set_frozen(true);
            let xn = Tensor::from_vec(rng.uniform_vec(n, 0.0, 1.0), (m.batch, c, h, w), &dev)?;
            for s in 0..steps {
                let (_, g) = net.energy_and_grad(&xn, cond)?;
                let p = LangevinUpdate { seed: it, step: s as u64, ..Default::default() };
                langevin_update_(&xn, Some(&g), None, &p)?;
            }
            net.set_frozen(false);
            // the CD + L2 loss, backward, gradient norm and optimizer step of a training iteration (ebm_cd::cd)
            ebm_cd::cd::update(&net, &mut [&mut opt], &x, cond, &xn, cond, 1.0, 1.0, None)?;
            it += 1;
            Ok(())
        })?,
    );
    Ok((out, fwd_macs))
}

/// PyTorch's medians from torch_reference.py (`forward`, `langevin_step`, `train_iteration`).
fn measure_torch(py: &PathBuf, script: &PathBuf, m: &Model, a: &BenchArgs) -> Result<BTreeMap<String, f64>> {
    let mut cmd = Command::new(py);
    cmd.arg(script).arg("bench").args(m.torch_args());
    cmd.args(["--steps", &a.steps.to_string(), "--reps", &a.reps.to_string(), "--threads", &a.threads.to_string()]);
    let out = cmd.output().with_context(|| format!("running {}", py.display()))?;
    if !out.status.success() {
        bail!("torch_reference.py failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut res = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if let (Some(w), Some(ms)) = (v["what"].as_str(), v["ms"].as_f64()) {
            res.insert(w.to_string(), ms);
        }
    }
    Ok(res)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `Model name`, logical CPUs, SIMD flags and the nominal clock, from /proc/cpuinfo.
fn machine() -> (String, usize, String, f64) {
    let info = read("/proc/cpuinfo");
    let field = |k: &str| {
        info.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let cpus = info.lines().filter(|l| l.starts_with("processor")).count();
    let flags = field("flags");
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    let simd: Vec<&str> = ["avx2", "fma", "avx512f"].into_iter().filter(|f| has(f)).collect();
    let mhz = field("cpu MHz").parse().unwrap_or(0.0);
    (field("model name"), cpus, simd.join(" "), mhz)
}

fn loadavg() -> String {
    read("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

pub fn run(a: BenchArgs) -> Result<()> {
    ebm_kernels::runtime::tune_allocator();
    // candle's elementwise pool and rayon both read RAYON_NUM_THREADS when first used
    std::env::set_var("RAYON_NUM_THREADS", a.threads.to_string());
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", a.candle_threads.to_string());
    }
    let candle_threads = std::env::var("CANDLE_NUM_THREADS").unwrap_or_default();
    rayon::ThreadPoolBuilder::new().num_threads(a.threads).build_global().ok();
    let models: Vec<Model> = a.models.iter().map(|n| Model::from_name(n)).collect::<Result<_>>()?;
    let (cpu, cpus, simd, mhz) = machine();
    let load_start = loadavg();
    eprintln!("measuring the peak ...");
    // the arithmetic peak: threads x the best single-thread FMA throughput of a few short runs (under load the
    // best run is the one that had a core to itself); and what all threads get right now
    let core = (0..5).map(|_| ebm_kernels::conv::fma_peak_gflops(1, 0.2)).fold(0f64, f64::max);
    let peak = core * a.threads as f64;
    let peak_now = ebm_kernels::conv::fma_peak_gflops(a.threads, 0.5);
    let gemm = ebm_kernels::conv::gemm_gflops(a.threads, 512, 5);

    let mut json = match &a.json {
        Some(p) => Some(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?),
        None => None,
    };
    let mut rows = Vec::new();
    for m in &models {
        let torch = match &a.torch {
            Some(py) => {
                eprintln!("{}: PyTorch ...", m.name);
                Some(measure_torch(py, &a.torch_script, m, &a)?)
            }
            None => None,
        };
        eprintln!("{}: ours ...", m.name);
        ops::set_conv_backend(ConvBackend::Fast);
        let (ours, fwd_macs) = measure_ours(m, a.reps, a.steps)?;
        let base = if a.baseline_reps > 0 {
            eprintln!("{}: candle's conv ...", m.name);
            ops::set_conv_backend(ConvBackend::Candle);
            let b = measure_ours(m, a.baseline_reps, a.steps)?.0;
            ops::set_conv_backend(ConvBackend::Fast);
            Some(b)
        } else {
            None
        };
        let f = fwd_macs;
        let macs = |what: &str| match what {
            "forward" => f,
            "langevin_step" => 2 * f,
            // steps x (forward + input gradient), then twice (forward + input gradient except the stem's + weight
            // gradient) for the positives and negatives
            _ => a.steps as u64 * 2 * f + 2 * (3 * f - m.stem_macs()),
        };
        for what in WHATS {
            let gflop = 2.0 * macs(what) as f64 / 1e9;
            let row = Row {
                model: m.name,
                what,
                base: base.as_ref().map(|b| b[what].ms),
                ours: ours[what].ms,
                peak_mb: ours[what].peak_mb,
                torch: torch.as_ref().and_then(|t| t.get(what).copied()),
                gflop,
            };
            if let Some(f) = json.as_mut() {
                let v = serde_json::json!({
                    "model": m.name, "what": what, "candle_conv_ms": row.base, "ours_ms": row.ours,
                    "ours_peak_rss_mb": row.peak_mb, "torch_ms": row.torch, "conv_gflop": gflop,
                    "threads": a.threads, "reps": a.reps,
                });
                writeln!(f, "{v}")?;
            }
            rows.push(row);
        }
    }
    let load_end = loadavg();

    println!(
        "Machine: {cpu}, {cpus} logical CPUs ({simd}), nominal {mhz:.0} MHz; {} threads on both sides \
         (RAYON_NUM_THREADS={}, CANDLE_NUM_THREADS={candle_threads}).",
        a.threads, a.threads
    );
    let flop_per_cycle = if ebm_kernels::conv::simd_available() { 32.0 } else { 2.0 };
    println!(
        "f32 peak: {peak:.0} GFLOP/s = {} threads x {core:.0} GFLOP/s, the best single-thread rate of independent \
         8-wide FMA chains ({flop_per_cycle} flop/cycle with two 256-bit FMA pipes: {:.2} GHz). All threads at once \
         got {peak_now:.0} GFLOP/s at the start (other load); our packed GEMM on 512^3 products, one per thread: \
         {gemm:.0} GFLOP/s.",
        a.threads,
        core / flop_per_cycle
    );
    println!(
        "Load average at start / end: {load_start} / {load_end}. Medians of {} runs ({} for candle's conv).",
        a.reps, a.baseline_reps
    );
    println!();
    println!(
        "| model | measurement | candle conv (before) ms | ours ms | PyTorch ms | PyTorch / ours | speed-up vs before \
         | conv GFLOP | ours GFLOP/s | % of peak | ours peak RSS MB |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let opt = |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |v| format!("{v:.prec$}"));
    for Row { model, what, base, ours, peak_mb, torch, gflop } in rows {
        let gfs = gflop / (ours / 1e3);
        println!(
            "| {model} | {what} | {} | {ours:.1} | {} | {} | {} | {gflop:.2} | {gfs:.0} | {:.0}% | {} |",
            opt(base, 1),
            opt(torch, 1),
            opt(torch.map(|t| t / ours), 2),
            opt(base.map(|b| b / ours), 1),
            100.0 * gfs / peak,
            opt(peak_mb, 0)
        );
    }
    println!();
    println!(
        "Peak RSS: this process's peak resident set while the measurement ran (warm-up included), the kernel's \
         record reset before each (/proc/self/clear_refs); it counts the model, its inputs and memory the \
         allocator keeps, so it is what the workload needs resident, not only what it allocates."
    );
    println!();
    println!(
        "GFLOP counts the convolutions' multiply-adds (x2) as direct convolutions: forward F, Langevin step 2F (forward \
         + input gradient), training iteration {}x2F + 2x(3F - stem) (weight gradients; no input gradient of the \
         stem). Winograd does fewer multiplies, so its GFLOP/s are effective rates.",
        a.steps
    );
    Ok(())
}
