//! Structure readers: valid extended XYZ and pymatgen JSON, bit-exact
//! round trips, and a clear error (file, frame, line, fix) for every kind of
//! malformed input.

use std::path::PathBuf;

use anisostudy::crystal::io::{read_structures, write_extxyz_file, ExtxyzOptions, Frame};
use anisostudy::crystal::Structure;
use anisostudy::error::InputError;

const HEADER: &str =
    r#"Lattice="4.0 0.0 0.0 0.0 4.0 0.0 0.0 0.0 4.0" Properties=species:S:1:pos:R:3 pbc="T T T""#;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn read(name: &str, text: &str, options: &ExtxyzOptions) -> (PathBuf, Result<Vec<Frame>, InputError>) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, name, text);
    let result = read_structures(&path, options);
    (path, result)
}

/// Reads a malformed file and checks that the error names the file, the
/// location and the problem, and offers a fix.
fn expect_error(
    name: &str,
    text: &str,
    options: &ExtxyzOptions,
    location: &str,
    problem: &str,
) -> InputError {
    let (path, result) = read(name, text, options);
    let err = result.expect_err("malformed input was accepted");
    assert!(err.location.contains(&path.display().to_string()), "location lacks the file: {err}");
    assert!(err.location.contains(location), "location should contain '{location}': {err}");
    assert!(err.problem.contains(problem), "problem should contain '{problem}': {err}");
    assert!(!err.hint.is_empty(), "no hint: {err}");
    err
}

fn defaults() -> ExtxyzOptions {
    ExtxyzOptions::default()
}

fn strict() -> ExtxyzOptions {
    ExtxyzOptions { require_dielectric: true, ..ExtxyzOptions::default() }
}

#[test]
fn reads_extxyz_with_extra_columns_keys_and_tensor() {
    let text = concat!(
        "2\n",
        r#"Lattice="4.0 0.0 0.0 0.0 4.0 0.0 0.0 0.0 4.0" Properties=species:S:1:pos:R:3:forces:R:3:tag:I:1 mp_id=mp-1 energy=-3.5 eps="1 0 0 0 2 0 0 0 3" note="two words" pbc="T T T""#,
        "\n",
        "Na 0.0 0.0 0.0 0.1 0.2 0.3 7\n",
        "Cl 2.0 2.0 2.0 0.0 0.0 0.0 8\n",
        "\n",
        "1\n",
        r#"Properties=Z:I:1:pos:R:3 Lattice="3.0 0.0 0.0 0.0 3.0 0.0 0.0 0.0 3.0" material_id="mp-2""#,
        "\n",
        "14 -0.5 0.25 9.0\n",
    );
    let options = ExtxyzOptions { dielectric_key: "eps".to_string(), require_dielectric: false };
    let (_, result) = read("two.extxyz", text, &options);
    let frames = result.unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0].structure.numbers, vec![11, 17]);
    assert_eq!(frames[0].structure.positions[1], [2.0, 2.0, 2.0]);
    assert_eq!(frames[0].dielectric, Some([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0]]));
    assert_eq!(frames[0].id.as_deref(), Some("mp-1"));
    assert_eq!(frames[0].line, 1);
    assert_eq!(frames[1].line, 6);
    assert_eq!(frames[1].structure.numbers, vec![14]);
    assert_eq!(frames[1].structure.positions[0], [-0.5, 0.25, 9.0]);
    assert_eq!(frames[1].id.as_deref(), Some("mp-2"));
    assert_eq!(frames[1].dielectric, None);
}

/// Written by ASE 3.29 (`ase.io.write(..., format="extxyz")`): a 3×3 `info`
/// array becomes `_JSON [[…]]`, extra per-atom columns and info keys follow.
#[test]
fn reads_extxyz_written_by_ase() {
    let text = concat!(
        "4\n",
        r#"Lattice="0.0 2.82 2.82 2.82 0.0 2.82 5.64 5.64 0.0" Properties=species:S:1:pos:R:3:forces:R:3:tags:I:1 dielectric="_JSON [[2.4, 0.01, 0.0], [0.01, 2.5, 0.0], [0.0, 0.0, 2.6]]" mp_id=mp-22862 energy=-3.25 note="a b c" flag=T pbc="T T T""#,
        "\n",
        "Na       0.01624345      -0.00611756      -0.00528172       0.85729069       0.49368121       0.87192932        0\n",
        "Cl       2.80927031       0.00865408      -0.02301539       0.79826306       0.22637792       0.62978090        1\n",
        "Na       2.83744812       2.81238793       0.00319039       0.10061035       0.32330157       0.59819422        2\n",
        "Cl       5.63750630       2.83462108      -0.02060141       0.16141834       0.48191393       0.01967713        3\n",
    );
    let (_, result) = read("ase.extxyz", text, &strict());
    let frames = result.unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(frames[0].structure.numbers, vec![11, 17, 11, 17]);
    assert_eq!(frames[0].structure.positions[3], [5.6375063, 2.83462108, -0.02060141]);
    assert_eq!(frames[0].structure.lattice[2], [5.64, 5.64, 0.0]);
    assert_eq!(frames[0].dielectric, Some([[2.4, 0.01, 0.0], [0.01, 2.5, 0.0], [0.0, 0.0, 2.6]]));
    assert_eq!(frames[0].id.as_deref(), Some("mp-22862"));
}

#[test]
fn extxyz_round_trip_is_bit_exact() {
    let frame = Frame {
        structure: Structure {
            lattice: [
                [4.1234567890123, 0.1, -1e-17],
                [0.3, 5.0 / 3.0 + 3.0, 0.0],
                [-0.7, 0.2, 6.000000000000001],
            ],
            numbers: vec![8, 22, 118],
            positions: vec![[0.1 + 0.2, -0.0, 1.0 / 3.0], [1.7e-9, 2.5, 3.0], [3.9, 4.4, 5.5]],
        },
        dielectric: Some([
            [5.123456789012345, 0.1, 1e-300],
            [0.1, 7.0, 0.0],
            [2.5e-8, 0.0, 1.0 + f64::EPSILON],
        ]),
        id: Some("mp 12 \"odd\"".to_string()),
        line: 1,
    };
    let plain = Frame { dielectric: None, id: None, line: 7, ..frame.clone() };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.extxyz");
    write_extxyz_file(&path, &[frame.clone(), plain.clone()]).unwrap();
    let back = read_structures(&path, &defaults()).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(back.len(), 2);
    assert_eq!(back[0], frame);
    assert_eq!(back[1].structure, plain.structure);
    assert_eq!(back[1].dielectric, None);
    assert_eq!(back[1].id, None);
    assert_eq!(back[1].line, 6); // where the second frame starts in the written file
    let bits = |s: &Structure| s.positions.iter().flatten().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&back[0].structure), bits(&frame.structure));
}

#[test]
fn reads_pymatgen_json_records() {
    let text = r#"[
  {"material_id": "mp-22862",
   "structure": {"@module": "pymatgen.core.structure", "@class": "Structure", "charge": 0,
     "lattice": {"matrix": [[0.0, 2.82, 2.82], [2.82, 0.0, 2.82], [2.82, 2.82, 0.0]], "pbc": [true, true, true]},
     "sites": [
       {"species": [{"element": "Na", "occu": 1}], "abc": [0.0, 0.0, 0.0], "xyz": [0.0, 0.0, 0.0], "label": "Na", "properties": {}},
       {"species": [{"element": "Cl", "oxidation_state": -1, "occu": 1.0}], "abc": [0.5, 0.5, 0.5], "label": "Cl", "properties": {}}
     ]},
   "dielectric": [[2.4, 0.0, 0.0], [0.0, 2.4, 0.0], [0.0, 0.0, 2.4]]},
  {"lattice": {"matrix": [[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]]},
   "sites": [{"species": [{"element": "Po", "occu": 1}], "xyz": [0.0, 0.0, 0.0]}]}
]"#;
    let (_, result) = read("nacl.json", text, &defaults());
    let frames = result.unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0].structure.numbers, vec![11, 17]);
    assert_eq!(frames[0].structure.positions[1], [2.82, 2.82, 2.82]);
    assert_eq!(frames[0].dielectric.unwrap()[2][2], 2.4);
    assert_eq!(frames[0].id.as_deref(), Some("mp-22862"));
    assert_eq!((frames[0].line, frames[1].line), (2, 10));
    assert_eq!(frames[1].structure.numbers, vec![84]);
    assert_eq!(frames[1].dielectric, None);
}

#[test]
fn empty_files() {
    expect_error("empty.extxyz", "", &defaults(), "", "no frames");
    expect_error("blank.xyz", "\n  \n\n", &defaults(), "", "no frames");
    expect_error("empty.json", "", &defaults(), "", "empty");
    expect_error("list.json", "[]", &defaults(), "", "no structures");
}

#[test]
fn unknown_extension() {
    expect_error("structure.cif", "data_x\n", &defaults(), "", "unknown structure file type '.cif'");
}

#[test]
fn non_finite_numbers() {
    let nan_position = format!("1\n{HEADER}\nSi nan 0.0 0.0\n");
    expect_error(
        "nan.extxyz",
        &nan_position,
        &defaults(),
        "frame 1 (line 3)",
        "position 'nan' is not finite",
    );
    let inf_lattice = "1\nLattice=\"inf 0 0 0 4 0 0 0 4\" Properties=species:S:1:pos:R:3\nSi 0 0 0\n";
    expect_error(
        "inf.extxyz",
        inf_lattice,
        &defaults(),
        "frame 1 (line 2)",
        "Lattice entry 'inf' is not finite",
    );
    let word = format!("1\n{HEADER}\nSi 0.0 zero 0.0\n");
    expect_error("word.extxyz", &word, &defaults(), "line 3", "position 'zero' is not a number");
    let nan_tensor = format!("1\n{} dielectric=\"1 0 0 0 NaN 0 0 0 1\"\nSi 0 0 0\n", HEADER);
    expect_error(
        "nan_tensor.extxyz",
        &nan_tensor,
        &defaults(),
        "line 2",
        "'dielectric' entry 'NaN' is not finite",
    );
    let json_nan =
        r#"[{"structure": {"lattice": {"matrix": [[NaN, 0, 0], [0, 3, 0], [0, 0, 3]]}, "sites": []}}]"#;
    expect_error("nan.json", json_nan, &defaults(), "frame 1 (line 1)", "invalid JSON");
}

#[test]
fn singular_or_flat_cells() {
    let flat = "1\nLattice=\"4 0 0 0 4 0 4 4 0\" Properties=species:S:1:pos:R:3\nSi 0 0 0\n";
    expect_error("flat.extxyz", flat, &defaults(), "frame 1 (line 1)", "singular or has near-zero volume");
    let json = r#"[{"structure": {"lattice": {"matrix": [[3, 0, 0], [0, 3, 0], [0, 0, 0]]},
      "sites": [{"species": [{"element": "Si", "occu": 1}], "xyz": [0, 0, 0]}]}}]"#;
    expect_error("flat.json", json, &defaults(), "frame 1 (line 1)", "singular");
    let missing = "1\nProperties=species:S:1:pos:R:3\nSi 0 0 0\n";
    expect_error("nolattice.extxyz", missing, &defaults(), "line 2", "no Lattice");
    let short = "1\nLattice=\"4 0 0 0 4 0 0 0\"\nSi 0 0 0\n";
    expect_error("short.extxyz", short, &defaults(), "line 2", "Lattice has 8 numbers, expected 9");
}

#[test]
fn unknown_elements() {
    let text = format!("2\n{HEADER}\nSi 0 0 0\nXx 1 1 1\n");
    expect_error("xx.extxyz", &text, &defaults(), "frame 1 (line 4)", "unknown element symbol 'Xx'");
    let lower = format!("1\n{HEADER}\nsi 0 0 0\n");
    expect_error("lower.extxyz", &lower, &defaults(), "line 3", "unknown element symbol 'si'");
    let json = r#"[{"structure": {"lattice": {"matrix": [[3, 0, 0], [0, 3, 0], [0, 0, 3]]},
      "sites": [{"species": [{"element": "Qq", "occu": 1}], "xyz": [0, 0, 0]}]}}]"#;
    expect_error("qq.json", json, &defaults(), "frame 1", "site 1: unknown element symbol 'Qq'");
}

#[test]
fn wrong_column_counts() {
    let text = format!("2\n{HEADER}\nSi 0 0 0\nSi 1 1\n");
    expect_error("cols.extxyz", &text, &defaults(), "frame 1 (line 4)", "atom 2 has 3 columns, expected 4");
    let extra = "1\nLattice=\"4 0 0 0 4 0 0 0 4\" Properties=species:S:1:pos:R:3:forces:R:3\nSi 0 0 0\n";
    expect_error("forces.extxyz", extra, &defaults(), "line 3", "atom 1 has 4 columns, expected 7");
    let bad_spec = "1\nLattice=\"4 0 0 0 4 0 0 0 4\" Properties=species:S:1:pos:R\nSi 0 0 0\n";
    expect_error("spec.extxyz", bad_spec, &defaults(), "line 2", "not a list of name:type:count triples");
}

#[test]
fn atom_count_mismatches() {
    // Fewer atom lines than declared, at the end of the file.
    let truncated = format!("3\n{HEADER}\nSi 0 0 0\nSi 2 2 2\n");
    expect_error(
        "trunc.extxyz",
        &truncated,
        &defaults(),
        "frame 1 (line 1)",
        "ends after 2 of the 3 atom lines",
    );
    // Fewer atom lines than declared, followed by another frame.
    let short = format!("3\n{HEADER}\nSi 0 0 0\nSi 2 2 2\n1\n{HEADER}\nSi 0 0 0\n");
    let err = expect_error(
        "short.extxyz",
        &short,
        &defaults(),
        "frame 1 (line 5)",
        "atom 3 has 1 columns, expected 4",
    );
    assert!(err.hint.contains("declares 3 atoms but has only 2"), "{err}");
    // More atom lines than declared.
    let long = format!("1\n{HEADER}\nSi 0 0 0\nSi 2 2 2\n");
    let err = expect_error(
        "long.extxyz",
        &long,
        &defaults(),
        "frame 2 (line 4)",
        "expected the number of atoms, found 'Si 2 2 2'",
    );
    assert!(err.hint.contains("frame 1"), "{err}");
    let zero = format!("0\n{HEADER}\n");
    expect_error("zero.extxyz", &zero, &defaults(), "line 1", "declares 0 atoms");
    expect_error("nocomment.extxyz", "2\n", &defaults(), "line 1", "ends before the frame's comment line");
}

#[test]
fn missing_or_misshapen_tensors() {
    let none = format!("1\n{HEADER}\nSi 0 0 0\n");
    expect_error(
        "none.extxyz",
        &none,
        &strict(),
        "frame 1 (line 2)",
        "no dielectric tensor under the key 'dielectric'",
    );
    let six = format!("1\n{} dielectric=\"1 0 0 1 0 1\"\nSi 0 0 0\n", HEADER);
    expect_error(
        "six.extxyz",
        &six,
        &defaults(),
        "line 2",
        "'dielectric' has 6 numbers, but a 3×3 tensor needs 9",
    );
    let other_key = ExtxyzOptions { dielectric_key: "epsilon".to_string(), require_dielectric: true };
    let wrong_key = format!("1\n{} dielectric=\"1 0 0 0 1 0 0 0 1\"\nSi 0 0 0\n", HEADER);
    expect_error("key.extxyz", &wrong_key, &other_key, "line 2", "under the key 'epsilon'");

    let site = r#"{"species": [{"element": "Si", "occu": 1}], "xyz": [0, 0, 0]}"#;
    let lattice = r#"{"matrix": [[3, 0, 0], [0, 3, 0], [0, 0, 3]]}"#;
    let json_2x2 = format!("[\n{{\"structure\": {{\"lattice\": {lattice}, \"sites\": [{site}]}}, \"dielectric\": [[1, 0], [0, 1]]}}\n]");
    expect_error(
        "t2.json",
        &json_2x2,
        &defaults(),
        "frame 1 (line 2)",
        "\"dielectric\" has 4 numbers, but a 3×3 matrix needs 9",
    );
    let json_ragged = format!("[{{\"structure\": {{\"lattice\": {lattice}, \"sites\": [{site}]}}, \"dielectric\": [[1, 0, 0, 0], [1, 0], [0, 0, 1]]}}]");
    expect_error("ragged.json", &json_ragged, &defaults(), "frame 1", "is not 3 rows of 3 numbers");
    let json_none = format!("[{{\"structure\": {{\"lattice\": {lattice}, \"sites\": [{site}]}}}}]");
    expect_error(
        "none.json",
        &json_none,
        &strict(),
        "frame 1",
        "no dielectric tensor under the key \"dielectric\"",
    );
    let json_text = format!(
        "[{{\"structure\": {{\"lattice\": {lattice}, \"sites\": [{site}]}}, \"dielectric\": \"diag\"}}]"
    );
    expect_error("text.json", &json_text, &defaults(), "frame 1", "which is not a number");
}

#[test]
fn atoms_too_close_across_periodic_images() {
    // 3.8 Å apart inside the cell, but 0.2 Å apart across the boundary.
    let text = format!("1\n{HEADER}\nSi 0 0 0\n3\n{HEADER}\nSi 0.1 0 0\nO 2.0 2.0 2.0\nO 3.9 0.0 0.0\n");
    let err = expect_error(
        "close.extxyz",
        &text,
        &defaults(),
        "frame 2 (line 4)",
        "atoms 1 and 3 are 0.2000 Å apart",
    );
    assert!(err.problem.contains("line 6") && err.problem.contains("line 8"), "{err}");
    let duplicate = format!("2\n{HEADER}\nSi 1 1 1\nSi 1 1 1\n");
    expect_error("dup.extxyz", &duplicate, &defaults(), "frame 1", "atoms 1 and 2 are 0.0000 Å apart");
    let tiny_cell = "1\nLattice=\"0.4 0 0 0 4 0 0 0 4\" Properties=species:S:1:pos:R:3\nSi 0 0 0\n";
    expect_error("tiny.extxyz", tiny_cell, &defaults(), "frame 1", "own periodic image");
}

#[test]
fn partial_occupancy_and_json_shape() {
    let lattice = r#"{"matrix": [[3, 0, 0], [0, 3, 0], [0, 0, 3]]}"#;
    let partial = format!(
        "[{{\"structure\": {{\"lattice\": {lattice}, \"sites\": [{{\"species\": [{{\"element\": \"Si\", \"occu\": 0.5}}], \"xyz\": [0, 0, 0]}}]}}}}]"
    );
    let err = expect_error("partial.json", &partial, &defaults(), "frame 1", "site 1: partial occupancy 0.5");
    assert!(err.hint.contains("ordered"), "{err}");
    let mixed = format!(
        "[{{\"structure\": {{\"lattice\": {lattice}, \"sites\": [{{\"species\": [{{\"element\": \"Si\", \"occu\": 0.5}}, {{\"element\": \"Ge\", \"occu\": 0.5}}], \"xyz\": [0, 0, 0]}}]}}}}]"
    );
    expect_error("mixed.json", &mixed, &defaults(), "frame 1", "2 species on one site (partial occupancy)");
    let no_coords =
        format!("[{{\"structure\": {{\"lattice\": {lattice}, \"sites\": [{{\"species\": [{{\"element\": \"Si\", \"occu\": 1}}]}}]}}}}]");
    expect_error("nocoords.json", &no_coords, &defaults(), "frame 1", "no \"xyz\" or \"abc\"");
    expect_error("nostructure.json", "[{\"dielectric\": 1}]", &defaults(), "frame 1", "no \"structure\"");
    expect_error("syntax.json", "[\n{\"structure\": }\n]", &defaults(), "frame 1 (line 2)", "invalid JSON");
    let second = "[\n{\"structure\": {}},\n{\"structure\":\n  [1, 2,]}\n]";
    expect_error("second.json", second, &defaults(), "frame 2 (line 4)", "invalid JSON");
    expect_error("open.json", "{\"structure\": ", &defaults(), "open.json", "invalid JSON");
    expect_error("scalar.json", "3", &defaults(), "", "not a list of records");
}
