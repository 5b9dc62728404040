//! A small pixel classifier trained by the project itself: the judge of conditional samples (does a sample drawn
//! for class y look like a y?) where no pretrained network can be had. Its own test accuracy is always reported
//! beside what it measures.

use candle_core::{DType, Device, Result, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use ebm_kernels::Rng;

/// A one-hidden-layer perceptron on flattened pixels.
pub struct PixelClassifier {
    w1: Var,
    b1: Var,
    w2: Var,
    b2: Var,
    input_dim: usize,
}

/// Training settings.
#[derive(Debug, Clone, Copy)]
pub struct ClassifierConfig {
    pub hidden: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub seed: u64,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        Self { hidden: 128, epochs: 60, batch_size: 64, lr: 2e-3, seed: 0 }
    }
}

impl PixelClassifier {
    /// Trains on images `[N, ...]` in [0, 1] with labels `0..classes` (plain Adam, no weight decay).
    pub fn train(x: &Tensor, labels: &[u32], classes: usize, cfg: ClassifierConfig) -> Result<Self> {
        let dev = x.device().clone();
        let n = x.dims()[0];
        if labels.len() != n {
            candle_core::bail!("classifier: {n} images but {} labels", labels.len());
        }
        let x = x.flatten_from(1)?.to_dtype(DType::F32)?;
        let d = x.dims()[1];
        let mut rng = Rng::new(cfg.seed);
        let glorot = |rng: &mut Rng, o: usize, i: usize| -> Result<Var> {
            let b = (6.0 / (o + i) as f32).sqrt();
            Var::from_tensor(&Tensor::from_vec(rng.uniform_vec(o * i, -b, b), (o, i), &dev)?)
        };
        let me = Self {
            w1: glorot(&mut rng, cfg.hidden, d)?,
            b1: Var::zeros(cfg.hidden, DType::F32, &dev)?,
            w2: glorot(&mut rng, classes, cfg.hidden)?,
            b2: Var::zeros(classes, DType::F32, &dev)?,
            input_dim: d,
        };
        let params = ParamsAdamW { lr: cfg.lr, weight_decay: 0.0, ..Default::default() };
        let mut opt = AdamW::new(vec![me.w1.clone(), me.b1.clone(), me.w2.clone(), me.b2.clone()], params)?;
        let y = Tensor::from_slice(labels, n, &dev)?;
        let mut order: Vec<usize> = (0..n).collect();
        for _ in 0..cfg.epochs {
            rng.shuffle(&mut order);
            for chunk in order.chunks(cfg.batch_size) {
                let idx = Tensor::from_vec(chunk.iter().map(|&i| i as u32).collect(), chunk.len(), &dev)?;
                let logits = me.logits(&x.index_select(&idx, 0)?)?;
                let loss = candle_nn::loss::cross_entropy(&logits, &y.index_select(&idx, 0)?)?;
                opt.backward_step(&loss)?;
            }
        }
        Ok(me)
    }

    /// Hidden-layer features `[B, hidden]` (for classifier-feature distances).
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.flatten_from(1)?.to_dtype(DType::F32)?;
        if x.dims()[1] != self.input_dim {
            candle_core::bail!("classifier expects {} values per image, got {}", self.input_dim, x.dims()[1]);
        }
        x.matmul(&self.w1.as_tensor().t()?)?.broadcast_add(self.b1.as_tensor())?.relu()
    }

    /// Class scores `[B, classes]`.
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        self.features(x)?.matmul(&self.w2.as_tensor().t()?)?.broadcast_add(self.b2.as_tensor())
    }

    /// The most likely class of each image.
    pub fn predict(&self, x: &Tensor) -> Result<Vec<u32>> {
        self.logits(x)?.argmax(D::Minus1)?.to_vec1::<u32>()
    }

    /// Fraction of `x` classified as `labels`.
    pub fn accuracy(&self, x: &Tensor, labels: &[u32]) -> Result<f64> {
        Ok(crate::classify::accuracy(&self.predict(x)?, labels))
    }

    pub fn device(&self) -> Device {
        self.w1.device().clone()
    }
}
