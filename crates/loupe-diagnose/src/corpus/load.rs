//! Reading the corpus: every `logs/*/index.toml` and the excerpts it names.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why the corpus could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Index {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{path}: case {file:?}: {what}")]
    Case {
        path: PathBuf,
        file: String,
        what: String,
    },
    /// A row of a curve's CSV file.
    #[error("{file} line {line}: {what}")]
    Row {
        file: String,
        line: usize,
        what: String,
    },
}

/// One excerpt with what it is expected to be diagnosed as.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// The family directory (`collective`, `healthy-vllm`, …).
    pub family: String,
    pub file: String,
    pub source: String,
    /// The expected first cause, or `none` for a healthy log.
    pub cause: String,
    /// Acceptable alternatives.
    pub also: Vec<String>,
    /// The process's exit status (0 for healthy logs).
    pub exit_code: i32,
    /// `dev` or `heldout`.
    pub split: String,
    pub note: Option<String>,
    /// The excerpt's lines, without line ends.
    pub lines: Vec<String>,
}

impl Case {
    /// A healthy log: any incident on it is a false positive.
    pub fn healthy(&self) -> bool {
        self.cause == "none"
    }

    /// The run status its end reports: `failed` for a non-zero exit.
    pub fn status(&self) -> &'static str {
        if self.exit_code == 0 {
            "finished"
        } else {
            "failed"
        }
    }

    /// The cause ids accepted as first.
    pub fn accepted(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.cause.as_str()).chain(self.also.iter().map(String::as_str))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Index {
    #[serde(default)]
    case: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    file: String,
    source: String,
    cause: String,
    #[serde(default)]
    also: Vec<String>,
    #[serde(default)]
    exit_code: Option<i32>,
    split: String,
    #[serde(default)]
    note: Option<String>,
}

/// The corpus directory of this source tree.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CorpusError + '_ {
    move |source| CorpusError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A file of the corpus as text.
pub(crate) fn read_text(path: &Path) -> Result<String, CorpusError> {
    std::fs::read_to_string(path).map_err(io(path))
}

/// An `index.toml` of the corpus (logs or curves), parsed.
pub(crate) fn read_index<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, CorpusError> {
    toml::from_str(&read_text(path)?).map_err(|e| CorpusError::Index {
        path: path.to_owned(),
        source: Box::new(e),
    })
}

/// Every case under `dir/logs/`, by family then file.
pub fn load(dir: &Path) -> Result<Vec<Case>, CorpusError> {
    let logs = dir.join("logs");
    let mut families: Vec<PathBuf> = std::fs::read_dir(&logs)
        .map_err(io(&logs))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("index.toml").is_file())
        .collect();
    families.sort();
    let mut out = Vec::new();
    for fam in families {
        let family = fam
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let index_path = fam.join("index.toml");
        let index: Index = read_index(&index_path)?;
        for e in index.case {
            out.push(case(&family, &fam, &index_path, e)?);
        }
    }
    Ok(out)
}

fn case(family: &str, dir: &Path, index_path: &Path, e: Entry) -> Result<Case, CorpusError> {
    let bad = |what: &str| CorpusError::Case {
        path: index_path.to_owned(),
        file: e.file.clone(),
        what: what.to_owned(),
    };
    if e.split != "dev" && e.split != "heldout" {
        return Err(bad("split must be \"dev\" or \"heldout\""));
    }
    let healthy = e.cause == "none";
    let exit_code = match e.exit_code {
        Some(c) => c,
        None if healthy => 0,
        // A failure whose post shows no exit status still ended the
        // process: 1 is what Python and most launchers return.
        None => 1,
    };
    let path = dir.join(&e.file);
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<String> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_owned())
        .collect();
    if lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    if lines.is_empty() {
        return Err(bad("the excerpt is empty"));
    }
    Ok(Case {
        family: family.to_owned(),
        file: e.file,
        source: e.source,
        cause: e.cause,
        also: e.also,
        exit_code,
        split: e.split,
        note: e.note,
        lines,
    })
}
