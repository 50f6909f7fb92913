//! What `simdnet train` says when a signal stopped it: where, what it wrote, and the exact
//! command that resumes the run.

use simdnet::train::{Stopped, TrainConfig};
use std::ffi::{OsStr, OsString};

/// `arg` quoted for a POSIX shell when it needs it.
fn shell_quote(arg: &OsStr) -> String {
    let s = arg.to_string_lossy();
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=./,:+@%".contains(&b));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The command line that resumes a run started with `argv` (after `train`): `--state FILE`
/// becomes `--resume FILE`, and `--init` and `--overwrite` are dropped (the state holds the
/// weights and the best so far). `None` when the run wrote no state file.
pub fn resume_command(argv: &[OsString]) -> Option<String> {
    let mut out: Vec<OsString> = vec!["simdnet".into(), "train".into()];
    let mut has_state = false;
    let mut i = 0;
    while i < argv.len() {
        let arg = argv[i].to_string_lossy().into_owned();
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let takes_value = inline.is_none() && name.starts_with("--") && i + 1 < argv.len();
        match name.as_str() {
            "--state" | "--resume" => {
                let value = match inline {
                    Some(v) => OsString::from(v),
                    None => {
                        i += 1;
                        argv.get(i).cloned().unwrap_or_default()
                    }
                };
                if !has_state {
                    out.push("--resume".into());
                    out.push(value);
                    has_state = true;
                }
            }
            "--init" => {
                if takes_value {
                    i += 1;
                }
            }
            "--overwrite" => {}
            _ => out.push(argv[i].clone()),
        }
        i += 1;
    }
    has_state.then(|| {
        out.iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// The lines printed to standard error when `stopped` ended a run.
pub fn message(stopped: &Stopped, cfg: &TrainConfig, argv: &[OsString]) -> String {
    let mut s = format!(
        "Stopped by {} at epoch {}, batch {} of {} (after {} steps).\n",
        stopped.reason.name(),
        stopped.epoch,
        stopped.batch,
        stopped.batches,
        stopped.steps
    );
    if let Some(p) = &cfg.save_last {
        s.push_str(&format!("Saved the last weights to {}.\n", p.display()));
    }
    match (&stopped.state, resume_command(argv)) {
        (Some(state), Some(command)) => {
            s.push_str(&format!(
                "Saved the state to {}. Resume with:\n  {command}\n",
                state.display()
            ));
        }
        _ => s.push_str(
            "No --state was given, so the run cannot be resumed (pass --state FILE to make a \
             run resumable).\n",
        ),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<OsString> {
        s.iter().map(OsString::from).collect()
    }

    #[test]
    fn resume_command_swaps_state_for_resume_and_drops_init() {
        let a = argv(&[
            "--epochs",
            "3",
            "--state",
            "run state",
            "--init",
            "w.st",
            "--overwrite",
            "--lr=0.1",
        ]);
        assert_eq!(
            resume_command(&a).unwrap(),
            "simdnet train --epochs 3 --resume 'run state' --lr=0.1"
        );
        let a = argv(&["--resume=s", "--threads", "2"]);
        assert_eq!(
            resume_command(&a).unwrap(),
            "simdnet train --resume s --threads 2"
        );
        assert_eq!(resume_command(&argv(&["--epochs", "3"])), None);
    }
}
