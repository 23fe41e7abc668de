//! [`Sample`]: what every collector produces.

/// One measured value of one series at the moment the collector ran.
///
/// Collectors do not stamp a time: the caller takes one clock reading per
/// collection round and gives it to every sample of that round, so series
/// sampled together line up exactly on a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// A series name such as `host.cpu.percent`.
    pub name: String,
    /// Labels that tell this series apart from its siblings (`cpu`=`0`);
    /// the caller adds the labels common to all (`host`).
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// A sample with the given labels.
    pub fn new(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            name: name.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        }
    }

    /// The value of label `key`, if present.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}
