//! A `command` objective with constraints, shared by the study and Optuna
//! bridge tests: it maximises x (prints −x), reports an intermediate value,
//! the metric `cost` = 10·x (bounded by 15) and its own constraint y − 0.5,
//! and sleeps past any short timeout when x > 1.8, so such trials fail for
//! resources and count as infeasible.

/// The `objective`, `constraints` and `failures` keys of a study file.
pub const OBJECTIVE_AND_CONSTRAINTS: &str = r#"objective:
  command: >-
    sh -c 'if awk "BEGIN { exit !({x} > 1.8) }"; then sleep 20; fi;
    awk "BEGIN { printf \"{\\\"step\\\": 1, \\\"value\\\": %.17g}\n\", -{x};
    printf \"{\\\"metrics\\\": {\\\"cost\\\": %.17g} }\n\", 10 * {x};
    printf \"{\\\"objective\\\": %.17g, \\\"constraints\\\": [%.17g]}\n\", -{x}, {y} - 0.5 }"'
constraints:
  - {metric: cost, max: 15}
  - {name: y_margin}
failures: infeasible
"#;
