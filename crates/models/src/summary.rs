//! Keras-style model summaries: one row per layer with its output shape and parameters.

use std::fmt;

/// One layer of a [`Summary`]: name, output shape without the batch axis, parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRow {
    pub layer: String,
    pub output_shape: Vec<i64>,
    /// All parameters, Keras-style: BatchNorm's moving mean and variance count too.
    pub params: i64,
    /// Of `params`, those no optimizer trains (BatchNorm's moving statistics).
    pub non_trainable: i64,
}

impl SummaryRow {
    pub fn new(layer: impl Into<String>, output_shape: Vec<i64>, params: i64) -> Self {
        SummaryRow {
            layer: layer.into(),
            output_shape,
            params,
            non_trainable: 0,
        }
    }

    /// The row with `n` of its parameters non-trainable.
    pub fn with_non_trainable(mut self, n: i64) -> Self {
        self.non_trainable = n;
        self
    }
}

/// A Keras-style model summary: a table of layers, then total, trainable and non-trainable
/// parameter counts. Shapes are written as Keras writes them, `(None, H, W, C)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub name: String,
    pub input_shape: Vec<i64>,
    pub rows: Vec<SummaryRow>,
}

impl Summary {
    pub fn new(name: impl Into<String>, input_shape: Vec<i64>, rows: Vec<SummaryRow>) -> Self {
        Summary {
            name: name.into(),
            input_shape,
            rows,
        }
    }

    /// Every parameter, BatchNorm's moving statistics included (as Keras counts them).
    pub fn total_params(&self) -> i64 {
        self.rows.iter().map(|r| r.params).sum()
    }

    /// The parameters no optimizer trains (BatchNorm's moving statistics).
    pub fn non_trainable_params(&self) -> i64 {
        self.rows.iter().map(|r| r.non_trainable).sum()
    }

    /// The parameters an optimizer trains.
    pub fn trainable_params(&self) -> i64 {
        self.total_params() - self.non_trainable_params()
    }
}

fn shape(dims: &[i64]) -> String {
    let inner: Vec<String> = std::iter::once("None".to_string())
        .chain(dims.iter().map(i64::to_string))
        .collect();
    format!("({})", inner.join(", "))
}

fn thousands(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rule = "─".repeat(70);
        writeln!(f, "Model: \"{}\"", self.name)?;
        writeln!(f, "┏{}┓", "━".repeat(70))?;
        writeln!(
            f,
            "┃ {:<30}┃ {:<24}┃ {:>10} ┃",
            "Layer (type)", "Output Shape", "Param #"
        )?;
        writeln!(f, "┡{}┩", "━".repeat(70))?;
        writeln!(
            f,
            "│ {:<30}│ {:<24}│ {:>10} │",
            "input (InputLayer)",
            shape(&self.input_shape),
            0
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "│ {:<30}│ {:<24}│ {:>10} │",
                r.layer,
                shape(&r.output_shape),
                thousands(r.params)
            )?;
        }
        writeln!(f, "└{rule}┘")?;
        writeln!(f, " Total params: {}", thousands(self.total_params()))?;
        writeln!(
            f,
            " Trainable params: {}",
            thousands(self.trainable_params())
        )?;
        writeln!(
            f,
            " Non-trainable params: {}",
            thousands(self.non_trainable_params())
        )
    }
}
