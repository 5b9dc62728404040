//! Named parameters and state tensors of a network, in a deterministic (sorted) order.

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use ebm_kernels::Rng;
use std::collections::BTreeMap;

/// One stored tensor: a trainable parameter, or state such as a power-iteration vector.
#[derive(Debug, Clone)]
pub struct Slot {
    pub var: Var,
    pub trainable: bool,
}

/// All tensors a network stores, by name (the official checkpoint's scope names, e.g. `res_1_res_c1/cweight`).
#[derive(Debug, Clone, Default)]
pub struct Params {
    slots: BTreeMap<String, Slot>,
    /// When planning: the shapes the network would store, and nothing allocated.
    plan: Option<BTreeMap<String, (Vec<usize>, bool)>>,
}

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    /// Params that only record the name, shape and trainability of every tensor a network asks for, allocating
    /// nothing: what a config would build, checked before building it (a config read from a file may ask for
    /// far more memory than the machine has).
    pub fn planning() -> Self {
        Self { slots: BTreeMap::new(), plan: Some(BTreeMap::new()) }
    }

    /// The recorded shapes of planning params (`None` for real ones).
    pub fn planned(&self) -> Option<&BTreeMap<String, (Vec<usize>, bool)>> {
        self.plan.as_ref()
    }

    /// Records `name` when planning (and says so); a name given twice is an error either way.
    fn record(&mut self, name: &str, shape: &Shape, trainable: bool) -> Result<bool> {
        let Some(plan) = self.plan.as_mut() else { return Ok(false) };
        if plan.insert(name.to_string(), (shape.dims().to_vec(), trainable)).is_some() {
            candle_core::bail!("parameter `{name}` defined twice");
        }
        Ok(true)
    }

    fn add(&mut self, name: &str, t: Tensor, trainable: bool) -> Result<()> {
        if self.slots.contains_key(name) {
            candle_core::bail!("parameter `{name}` defined twice");
        }
        self.slots.insert(name.to_string(), Slot { var: Var::from_tensor(&t)?, trainable });
        Ok(())
    }

    /// A trainable parameter drawn from N(0, std^2).
    pub fn normal(&mut self, name: &str, shape: impl Into<Shape>, std: f32, rng: &mut Rng, dev: &Device) -> Result<()> {
        let shape = shape.into();
        if self.record(name, &shape, true)? {
            return Ok(());
        }
        let v = rng.normal_vec(shape.elem_count(), 0.0, std);
        self.add(name, Tensor::from_vec(v, shape, dev)?, true)
    }

    /// A trainable parameter drawn from U(-bound, bound).
    pub fn uniform(
        &mut self,
        name: &str,
        shape: impl Into<Shape>,
        bound: f32,
        rng: &mut Rng,
        dev: &Device,
    ) -> Result<()> {
        let shape = shape.into();
        if self.record(name, &shape, true)? {
            return Ok(());
        }
        let v = rng.uniform_vec(shape.elem_count(), -bound, bound);
        self.add(name, Tensor::from_vec(v, shape, dev)?, true)
    }

    /// A trainable parameter filled with `value`.
    pub fn constant(&mut self, name: &str, shape: impl Into<Shape>, value: f32, dev: &Device) -> Result<()> {
        let shape = shape.into();
        if self.record(name, &shape, true)? {
            return Ok(());
        }
        let t = (Tensor::ones(shape, DType::F32, dev)? * value as f64)?;
        self.add(name, t, true)
    }

    /// Non-trainable state drawn from N(0, 1) (the spectral-norm vector `u`).
    pub fn state_normal(&mut self, name: &str, shape: impl Into<Shape>, rng: &mut Rng, dev: &Device) -> Result<()> {
        let shape = shape.into();
        if self.record(name, &shape, false)? {
            return Ok(());
        }
        let v = rng.normal_vec(shape.elem_count(), 0.0, 1.0);
        self.add(name, Tensor::from_vec(v, shape, dev)?, false)
    }

    pub fn get(&self, name: &str) -> Result<&Var> {
        match self.slots.get(name) {
            Some(s) => Ok(&s.var),
            None => candle_core::bail!("no parameter named `{name}`"),
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.slots.contains_key(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Slot)> {
        self.slots.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Every parameter's bits (as f64, exact for f32 and f64 values), by name: equal exactly when two runs computed
    /// the same numbers, the check behind every "bit for bit" claim of the project.
    pub fn bits(&self) -> Result<Vec<(String, Vec<u64>)>> {
        self.slots
            .iter()
            .map(|(k, s)| {
                let v = s.var.as_tensor().to_dtype(candle_core::DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
                Ok((k.clone(), v.iter().map(|x| x.to_bits()).collect()))
            })
            .collect()
    }

    /// The first tensor holding a NaN or an infinity, by name (`None` when every value is finite).
    pub fn first_non_finite(&self) -> Result<Option<&str>> {
        for (k, s) in &self.slots {
            if !crate::net::all_finite(s.var.as_tensor())? {
                return Ok(Some(k));
            }
        }
        Ok(None)
    }

    /// Trainable parameters, sorted by name: the order an optimizer's state follows.
    pub fn trainable(&self) -> Vec<(String, Var)> {
        self.slots.iter().filter(|(_, s)| s.trainable).map(|(k, s)| (k.clone(), s.var.clone())).collect()
    }

    /// Converts every stored tensor to `dtype` (e.g. f64 for precise gradient checks).
    pub fn to_dtype(&mut self, dtype: DType) -> Result<()> {
        for slot in self.slots.values_mut() {
            slot.var = Var::from_tensor(&slot.var.as_tensor().to_dtype(dtype)?)?;
        }
        Ok(())
    }

    /// Number of stored tensors and of scalars in them.
    pub fn counts(&self) -> (usize, usize) {
        (self.slots.len(), self.slots.values().map(|s| s.var.elem_count()).sum())
    }

    /// Number of scalars in trainable parameters.
    pub fn trainable_count(&self) -> usize {
        self.slots.values().filter(|s| s.trainable).map(|s| s.var.elem_count()).sum()
    }
}
