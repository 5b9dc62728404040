//! A small pixel classifier trained by the project itself: the judge of conditional samples (does a sample drawn
//! for class y look like a y?) where no pretrained network can be had. Its own test accuracy is always reported
//! beside what it measures.

use candle_core::{DType, Device, Result, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use ebm_io::Bundle;
use ebm_kernels::Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Metadata key of a saved classifier's format tag.
pub const FORMAT_KEY: &str = "ebm.format";
/// The format tag of saved pixel classifiers.
pub const FORMAT: &str = "ebm-pixel-classifier/1";
/// Metadata key of a saved classifier's [`ClassifierInfo`] (JSON).
pub const INFO_KEY: &str = "ebm.classifier_info";

/// What a saved classifier was trained on and how well it does: reported beside every number it judges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierInfo {
    /// The dataset name (e.g. `digits`, `fashion-mnist`).
    pub dataset: String,
    /// Image shape `[C, H, W]`.
    pub input_shape: [usize; 3],
    pub classes: usize,
    pub hidden: usize,
    pub train_images: usize,
    /// Accuracy on the dataset's test split.
    pub test_accuracy: f64,
    pub epochs: usize,
    pub seed: u64,
}

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

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.b2.dims()[0]
    }

    /// Writes the weights and `info` to one safetensors file, atomically.
    pub fn save(&self, path: &Path, info: &ClassifierInfo) -> std::result::Result<(), ebm_io::IoError> {
        let mut b = Bundle::new();
        for (k, v) in [
            ("classifier/w1", &self.w1),
            ("classifier/b1", &self.b1),
            ("classifier/w2", &self.w2),
            ("classifier/b2", &self.b2),
        ] {
            b.insert(k, v.as_tensor().clone());
        }
        b.set_meta(FORMAT_KEY, FORMAT);
        b.set_meta(INFO_KEY, serde_json::to_string(info).expect("the info serialises"));
        b.save(path)
    }

    /// Reads a classifier written by [`PixelClassifier::save`]. A file without the classifier's tensors (an energy
    /// model checkpoint, say) is an error that names the file and says how to make one.
    pub fn load(path: &Path, device: &Device) -> std::result::Result<(Self, ClassifierInfo), ebm_io::IoError> {
        let bundle = Bundle::load(path, device)?;
        let err = |reason: String| ebm_io::IoError::Content { path: path.to_path_buf(), reason };
        if bundle.metadata.get(FORMAT_KEY).map(String::as_str) != Some(FORMAT)
            || !bundle.tensors.contains_key("classifier/w1")
        {
            let what = match bundle.metadata.get(FORMAT_KEY) {
                Some(f) => format!("a `{f}` file"),
                None => "a file without an `ebm.format` tag".into(),
            };
            return Err(err(format!(
                "not a pixel classifier: {what} with no classifier head (`classifier/w1`); train one with \
                 `ebm-train eval train-classifier`"
            )));
        }
        let info: ClassifierInfo = serde_json::from_str(bundle.meta(path, INFO_KEY)?)
            .map_err(|e| err(format!("classifier info does not parse: {e}")))?;
        let get = |k: &str| -> std::result::Result<Var, ebm_io::IoError> {
            let t = bundle.get(path, k)?;
            Var::from_tensor(&t.to_dtype(DType::F32).map_err(|e| err(e.to_string()))?).map_err(|e| err(e.to_string()))
        };
        let (w1, b1, w2, b2) =
            (get("classifier/w1")?, get("classifier/b1")?, get("classifier/w2")?, get("classifier/b2")?);
        let input_dim = w1.dims().get(1).copied().unwrap_or(0);
        let ok = w1.rank() == 2
            && b1.dims() == [w1.dims()[0]]
            && w2.rank() == 2
            && w2.dims()[1] == w1.dims()[0]
            && b2.dims() == [w2.dims()[0]]
            && input_dim == info.input_shape.iter().product::<usize>();
        if !ok {
            return Err(err(format!(
                "classifier tensors of inconsistent shapes (w1 {:?}, b1 {:?}, w2 {:?}, b2 {:?}, images {:?})",
                w1.dims(),
                b1.dims(),
                w2.dims(),
                b2.dims(),
                info.input_shape
            )));
        }
        Ok((Self { w1, b1, w2, b2, input_dim }, info))
    }
}
