//! Model checkpoints as safetensors: one tensor per parameter under its
//! PyTorch state-dict name and shape, the [`ModelConfig`] as JSON metadata.

use std::collections::HashMap;
use std::path::Path;

use ::safetensors::tensor::{Dtype as StDtype, SafeTensors, TensorView};
use dfdx::prelude::{Cpu, Device};

use super::arch::Architecture;
use super::config::{ModelConfig, ModelError};
use super::{AnisoNet, ModelFloat};

const FORMAT: &str = "anisostudy-anisonet-1";

impl<E: ModelFloat> AnisoNet<E>
where
    Cpu: Device<E>,
{
    /// Writes the parameters (in precision `E`) and the configuration to `path`.
    pub fn save_safetensors(&self, path: &Path) -> Result<(), ModelError> {
        let err = |m: String| ModelError::Parameters(format!("{}: {m}", path.display()));
        let flat = self.params.flat.as_vec();
        let single = std::mem::size_of::<E>() == 4;
        let dtype = if single { StDtype::F32 } else { StDtype::F64 };
        let bytes: Vec<Vec<u8>> = self
            .arch()
            .params
            .iter()
            .map(|p| {
                let values = &flat[p.offset..p.offset + p.numel()];
                if single {
                    values.iter().flat_map(|v| (v.to64() as f32).to_le_bytes()).collect()
                } else {
                    values.iter().flat_map(|v| v.to64().to_le_bytes()).collect()
                }
            })
            .collect();
        let mut views = Vec::new();
        for (p, b) in self.arch().params.iter().zip(&bytes) {
            views.push((
                p.name.clone(),
                TensorView::new(dtype, p.shape.clone(), b).map_err(|e| err(e.to_string()))?,
            ));
        }
        let config = serde_json::to_string(&self.arch().config).map_err(|e| err(e.to_string()))?;
        let meta =
            HashMap::from([("format".to_string(), FORMAT.to_string()), ("config".to_string(), config)]);
        ::safetensors::serialize_to_file(views, &Some(meta), path)
            .map_err(|e| err(format!("cannot write: {e}")))
    }

    /// Reads a checkpoint written by [`AnisoNet::save_safetensors`] (either precision).
    pub fn load_safetensors(path: &Path, device: &Cpu) -> Result<AnisoNet<E>, ModelError> {
        let err = |m: String| ModelError::Parameters(format!("{}: {m}", path.display()));
        let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let (_, meta) =
            SafeTensors::read_metadata(&bytes).map_err(|e| err(format!("not a safetensors file: {e}")))?;
        let info = meta.metadata().clone().unwrap_or_default();
        if info.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(err(format!("not an AnisoNet checkpoint (metadata format != {FORMAT:?})")));
        }
        let config: ModelConfig = serde_json::from_str(info.get("config").map_or("", String::as_str))
            .map_err(|e| err(format!("unreadable model configuration: {e}")))?;
        let arch = Architecture::new(&config)?;
        let tensors = SafeTensors::deserialize(&bytes).map_err(|e| err(e.to_string()))?;
        let mut flat = vec![E::zero(); arch.num_params];
        for p in &arch.params {
            let t = tensors.tensor(&p.name).map_err(|_| err(format!("missing parameter {:?}", p.name)))?;
            if t.shape() != p.shape.as_slice() {
                return Err(err(format!(
                    "parameter {:?} has shape {:?}, expected {:?}",
                    p.name,
                    t.shape(),
                    p.shape
                )));
            }
            let out = &mut flat[p.offset..p.offset + p.numel()];
            match t.dtype() {
                StDtype::F32 => {
                    for (o, c) in out.iter_mut().zip(t.data().chunks_exact(4)) {
                        *o = E::of(f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64);
                    }
                }
                StDtype::F64 => {
                    for (o, c) in out.iter_mut().zip(t.data().chunks_exact(8)) {
                        *o = E::of(f64::from_le_bytes(c.try_into().expect("8 bytes")));
                    }
                }
                other => {
                    return Err(err(format!(
                        "parameter {:?} has dtype {other:?}; expected F32 or F64",
                        p.name
                    )))
                }
            }
        }
        Ok(AnisoNet::from_flat(arch, flat, device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::synthetic::random_batch;
    use crate::model::ModelKind;

    #[test]
    fn round_trip_reproduces_predictions() {
        let config = ModelConfig {
            kind: ModelKind::Scalar,
            em_dim: 4,
            layers: 1,
            lmax: 1,
            mul: 2,
            num_basis: 4,
            radial_neurons: 5,
            ..Default::default()
        };
        let dev = Cpu::default();
        let model = AnisoNet::<f64>::new(&config, &dev, 3).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        model.save_safetensors(&path).unwrap();
        let back = AnisoNet::<f64>::load_safetensors(&path, &dev).unwrap();
        let input = random_batch(1, 2, 3, 4, 5.0);
        assert_eq!(model.predict(&input).unwrap(), back.predict(&input).unwrap());
        assert_eq!(back.arch().config, config);
        std::fs::write(&path, b"garbage").unwrap();
        let e = AnisoNet::<f32>::load_safetensors(&path, &dev).err().unwrap().to_string();
        assert!(e.contains("model.safetensors"), "{e}");
    }
}
