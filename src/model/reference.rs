//! Import of weights trained by the Python reference: a JSON file with
//! `config` (AnisoNet constructor arguments) and `parameters` (PyTorch
//! state-dict name → `{shape, values}` row-major). Constant buffers
//! (`output_mask`, `_w3j_*`) and empty tensors are ignored.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::arch::{Architecture, Irreps};
use super::config::{ModelConfig, ModelError, ModelKind, OutputMode, Precision};

#[derive(Deserialize)]
struct RawTensor {
    shape: Vec<usize>,
    values: Vec<f64>,
}

#[derive(Deserialize)]
struct RawConfig {
    em_dim: usize,
    layers: usize,
    mul: usize,
    lmax: usize,
    max_radius: f64,
    number_of_basis: usize,
    radial_layers: usize,
    radial_neurons: usize,
    num_neighbors: f64,
    irreps_out: String,
}

#[derive(Deserialize)]
struct RawFile {
    config: RawConfig,
    parameters: HashMap<String, RawTensor>,
}

/// A reference model: its configuration and flat parameters (f64, our layout).
pub struct ReferenceWeights {
    pub config: ModelConfig,
    pub arch: Architecture,
    pub flat: Vec<f64>,
}

/// Reads a reference parameter file; errors name the file and the offending entry.
pub fn load_reference(path: &Path) -> Result<ReferenceWeights, ModelError> {
    let err = |m: String| ModelError::Parameters(format!("{}: {m}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
    parse_reference(&text).map_err(|e| match e {
        ModelError::Parameters(m) => err(m),
        other => other,
    })
}

/// [`load_reference`] on the file's text.
pub fn parse_reference(text: &str) -> Result<ReferenceWeights, ModelError> {
    let raw: RawFile = serde_json::from_str(text)
        .map_err(|e| ModelError::Parameters(format!("not a reference parameter file: {e}")))?;
    let c = &raw.config;
    let kind = match c.irreps_out.replace(' ', "").as_str() {
        "1x0e+1x2e" | "0e+2e" => ModelKind::Equivariant,
        "6x0e" => ModelKind::Scalar,
        other => {
            return Err(ModelError::Parameters(format!("irreps_out {other:?}: expected 1x0e+1x2e or 6x0e")))
        }
    };
    let config = ModelConfig {
        kind,
        em_dim: c.em_dim,
        layers: c.layers,
        lmax: c.lmax,
        mul: c.mul,
        num_basis: c.number_of_basis,
        radial_neurons: c.radial_neurons,
        radial_layers: c.radial_layers,
        cutoff: c.max_radius,
        num_neighbors: c.num_neighbors,
        dtype: Precision::F64,
        output: OutputMode::Raw,
        eps_offset: 0.0,
    };
    let arch = Architecture::new(&config)?;
    let mut flat = vec![0.0; arch.num_params];
    for entry in &arch.params {
        let t = raw
            .parameters
            .get(&entry.name)
            .ok_or_else(|| ModelError::Parameters(format!("missing parameter {:?}", entry.name)))?;
        if t.shape != entry.shape || t.values.len() != entry.numel() {
            return Err(ModelError::Parameters(format!(
                "parameter {:?} has shape {:?} ({} values), the architecture needs {:?}",
                entry.name,
                t.shape,
                t.values.len(),
                entry.shape
            )));
        }
        flat[entry.offset..entry.offset + entry.numel()].copy_from_slice(&t.values);
    }
    for (name, t) in &raw.parameters {
        let known = arch.params.iter().any(|p| &p.name == name);
        let constant = name.ends_with("output_mask") || name.contains("._w3j_") || t.values.is_empty();
        if !known && !constant {
            return Err(ModelError::Parameters(format!(
                "unexpected parameter {name:?} for this architecture"
            )));
        }
    }
    Ok(ReferenceWeights { config, arch, flat })
}

/// e3nn string form of an irreps (for comparisons with reference files).
pub fn irreps_string(irreps: &Irreps) -> String {
    irreps.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#""config": {"em_dim": 2, "layers": 1, "mul": 1, "lmax": 1, "max_radius": 5.0,
        "number_of_basis": 2, "radial_layers": 1, "radial_neurons": 2, "num_neighbors": 3.0, "irreps_out": "1x0e+1x2e"}"#;

    fn file(params: &str) -> String {
        format!("{{{CONFIG}, \"parameters\": {{{params}}}}}")
    }

    fn complete() -> (Architecture, String) {
        let c = ModelConfig {
            em_dim: 2,
            layers: 1,
            mul: 1,
            lmax: 1,
            num_basis: 2,
            radial_neurons: 2,
            num_neighbors: 3.0,
            ..Default::default()
        };
        let arch = Architecture::new(&c).unwrap();
        let params: Vec<String> = arch
            .params
            .iter()
            .map(|p| {
                format!(
                    "\"{}\": {{\"shape\": {:?}, \"values\": {:?}}}",
                    p.name,
                    p.shape,
                    vec![0.5; p.numel()]
                )
            })
            .collect();
        (arch, params.join(", "))
    }

    #[test]
    fn loads_complete_file_and_ignores_constants() {
        let (arch, params) = complete();
        let text = file(&format!(
            "{params}, \"layers.0.first.sc.output_mask\": {{\"shape\": [1], \"values\": [1.0]}}"
        ));
        let w = parse_reference(&text).unwrap();
        assert_eq!(w.flat.len(), arch.num_params);
        assert!(w.flat.iter().all(|&v| v == 0.5));
    }

    #[test]
    fn errors_name_the_problem() {
        let (_, params) = complete();
        let missing =
            parse_reference(&file(&params.replacen("em.bias", "em.bias_typo", 1))).err().unwrap().to_string();
        assert!(missing.contains("missing parameter \"em.bias\""), "{missing}");
        let shape = parse_reference(&file(&params.replacen("\"shape\": [2]", "\"shape\": [3]", 1)))
            .err()
            .unwrap()
            .to_string();
        assert!(shape.contains("em.bias") && shape.contains("shape"), "{shape}");
        let syntax = parse_reference("{").err().unwrap().to_string();
        assert!(syntax.contains("not a reference parameter file"), "{syntax}");
    }
}
