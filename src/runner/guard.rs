//! What `dinoseg run` refuses before anything loads or opens for writing: an output that is one of the inputs
//! (the same path, a symbolic or hard link to it: [`crate::files::refuse_overwrite`]), an output folder that is
//! the input folder or a folder holding input images, and a `--stats-json` that is an input or another output.

use super::inputs::Input;
use super::run::RunOptions;
use crate::error::{Error, Result};
use crate::files::{refuse_overwrite, same_file};
use std::path::{Path, PathBuf};

/// Every path the run reads: the parameters file, the `--input` as given, the files it names and their folders.
fn input_paths(opts: &RunOptions, input: &Input) -> Vec<PathBuf> {
    let mut paths = vec![opts.params.clone(), PathBuf::from(&opts.input)];
    let files = match input {
        Input::Images(files) => files.clone(),
        Input::Bag(path) => vec![path.clone()],
    };
    for f in files {
        if let Some(dir) = f.parent() {
            let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
            if !paths.iter().any(|p| p == dir) {
                paths.push(dir.to_path_buf());
            }
        }
        paths.push(f);
    }
    paths
}

/// Refuses outputs that would overwrite or write into what the run reads.
pub(crate) fn refuse_outputs(opts: &RunOptions, input: &Input) -> Result<()> {
    let inputs = input_paths(opts, input);
    let refs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    refuse_overwrite(&opts.output, &refs, "--output")?;
    if let Some(files) = &opts.files {
        refuse_overwrite(files, &refs, "--files")?;
        if same_file(files, &opts.output) {
            return Err(Error::Input(format!("--files {} is the --output folder", files.display())));
        }
    }
    if let Some(stats) = &opts.stats_json {
        refuse_overwrite(stats, &refs, "--stats-json")?;
        let outputs: Vec<&Path> = std::iter::once(opts.output.as_path()).chain(opts.files.as_deref()).collect();
        for out in outputs {
            if same_file(stats, out) || stats == out {
                return Err(Error::Input(format!("--stats-json {} is an output of the run", stats.display())));
            }
        }
    }
    Ok(())
}

/// True when `--stats-json` may be written: it is not one of the inputs (checked again at the end of the run).
pub(crate) fn stats_json_allowed(opts: &RunOptions, input: Option<&Input>) -> bool {
    let Some(stats) = &opts.stats_json else { return false };
    let inputs = match input {
        Some(input) => input_paths(opts, input),
        None => vec![opts.params.clone(), PathBuf::from(&opts.input)],
    };
    let refs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    refuse_overwrite(stats, &refs, "--stats-json").is_ok() && !same_file(stats, &opts.output)
}
