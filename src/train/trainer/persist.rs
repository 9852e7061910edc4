//! The trainer's persistence: epoch checkpoints (`best` then `last`), the checkpoint written on
//! interruption, resume from the newest valid checkpoint, the restore after a divergence, and the
//! run's provenance (`env.json`).

use super::{model_args, Trainer};
use crate::device;
use crate::error::{Error, Result};
use crate::metrics::EvalResult;
use crate::run;
use crate::train::checkpoint::{self, TrainState};
use crate::train::ema::Ema;
use crate::train::lookahead::Lookahead;
use tch::Tensor;

impl Trainer {
    /// The optimizer state plus the weight averages that are on: EMA (`ema.*`) and lookahead's
    /// slow weights.
    pub(super) fn checkpoint_tensors(&self) -> Vec<(String, Tensor)> {
        let mut t = self.optim.state_tensors();
        if let Some(ema) = &self.ema {
            t.extend(ema.state_tensors());
        }
        if let Some(la) = &self.lookahead {
            t.extend(la.state_tensors());
        }
        t
    }

    /// Restores the weight averages (EMA, lookahead) from a checkpoint's optimizer tensors
    /// (restarting one from the loaded weights, with a warning, when the checkpoint has none).
    pub(super) fn load_averages(&mut self, optim: &[(String, Tensor)]) {
        if let Some(ema) = &mut self.ema {
            if !ema.load(optim) {
                crate::notice::warn("the checkpoint has no weight average; restarting it from the loaded weights");
                *ema = Ema::new(&self.model.vs, self.cfg.train.ema_decay);
            }
        }
        if let Some(la) = &mut self.lookahead {
            if !la.load(optim) {
                crate::notice::warn("the checkpoint has no lookahead weights; restarting them from the loaded weights");
                *la = Lookahead::new(&self.model.vs, self.cfg.train.lookahead_every as u64);
            }
        }
    }

    /// Closes epoch `epoch` in the training state (time, best accuracy) and refuses non-finite
    /// weights; returns whether the epoch is the best so far. The checkpoints are written after
    /// the epoch's records ([`Self::save_checkpoints`]). Without a validation split
    /// (`data.val_split` = 0) the epochs are scored on the test split, and no epoch is "best":
    /// choosing a checkpoint on test images would leak them into the reported figure.
    pub(super) fn close_epoch(&mut self, epoch: i64, val: &EvalResult, secs: f64) -> Result<bool> {
        self.state.epoch = epoch;
        self.state.train_secs += secs;
        let is_best = self.cfg.data.has_val_split() && val.acc > self.state.best_acc;
        if is_best {
            self.state.best_acc = val.acc;
            self.state.best_epoch = epoch;
        }
        if !val.loss.is_finite() || !self.weights_finite() {
            return Err(Error::Diverged {
                what: format!(
                    "the weights became non-finite during epoch {epoch} (validation loss {}); no checkpoint was \
                     written for it",
                    val.loss
                ),
                advice: self.resume_advice("Lower optim.lr or set train.grad_clip"),
            });
        }
        Ok(is_best)
    }

    /// Writes `best` (when the epoch is the best) and `last`.
    pub(super) fn save_checkpoints(&mut self, is_best: bool) -> Result<()> {
        let dir = self.checkpoint_dir();
        let optim = self.checkpoint_tensors();
        // `best` first: a crash between the two saves then leaves `best` newer than `last`, and
        // resume (which takes the newest valid checkpoint) loses nothing.
        if is_best {
            checkpoint::save(&dir, "best", &self.model.vs, &optim, &self.state)?;
            crate::failpoint::hit("checkpoint.between_best_and_last");
        }
        checkpoint::save(&dir, "last", &self.model.vs, &optim, &self.state)
    }

    pub(super) fn weights_finite(&self) -> bool {
        tch::no_grad(|| {
            self.model.vs.trainable_variables().iter().all(|t| bool::try_from(t.isfinite().all()).unwrap_or(false))
        })
    }

    /// Saves `last` mid-epoch after a stop request and builds the error that tells how to resume.
    pub(super) fn interrupt(&mut self, secs: f64) -> Error {
        self.state.train_secs += secs;
        let saved = match self.writes_run() {
            true => checkpoint::save(
                &self.checkpoint_dir(),
                "last",
                &self.model.vs,
                &self.checkpoint_tensors(),
                &self.state,
            ),
            false => Ok(()), // rank 0 saves it
        };
        if let Some(d) = &self.dist {
            // No rank exits before rank 0 has saved: torchrun would end it on the first exit.
            let _ = d.barrier("while rank 0 saves the checkpoint");
        }
        match saved {
            Ok(()) => Error::Interrupted(format!(
                "interrupted after step {} (epoch {}); checkpoint saved. Resume with: microvision train --resume {}",
                self.state.step,
                self.state.epoch + 1,
                self.run_dir.display()
            )),
            Err(e) => Error::Interrupted(format!(
                "interrupted after step {}; the checkpoint could not be written ({e}); the previous one is intact. \
                 Resume with: microvision train --resume {}",
                self.state.step,
                self.run_dir.display()
            )),
        }
    }

    /// A checkpoint's step count must fall in its epoch at today's steps per epoch: an edited
    /// `data.batch_size`, `train.accumulate_steps` or `data.val_split` would otherwise resume
    /// mid-epoch at the wrong image and stretch or cut the learning-rate schedule, silently.
    /// (Interrupted after an epoch's last step and before its evaluation, a checkpoint holds all
    /// of the next epoch's steps: the upper bound is included.)
    fn check_steps_fit(&self, state: &TrainState) -> Result<()> {
        let per_epoch = self.steps_per_epoch() as i64;
        let (epoch, step) = (state.epoch, state.step);
        if per_epoch > 0 && epoch * per_epoch <= step && step <= (epoch + 1) * per_epoch {
            return Ok(());
        }
        Err(crate::config_err!(
            "{}: the checkpoint has {step} optimizer steps after {epoch} epochs, but `data.batch_size` = {}, \
             `train.accumulate_steps` = {} and `data.val_split` = {} make {per_epoch} steps per epoch of the {} \
             training images; were they edited since the run started? Restore them, or start a new run",
            self.run_dir.join("config.toml").display(),
            self.cfg.data.batch_size,
            self.cfg.train.accumulate_steps,
            self.cfg.data.val_split,
            self.data.train.len()
        ))
    }

    /// Loads the newest valid checkpoint into the model, optimizer and state; starts over when no
    /// epoch had finished, and refuses (changing nothing) when finished epochs are recorded but
    /// no checkpoint can be read.
    pub(super) fn restore_newest_checkpoint(&mut self) -> Result<()> {
        let dir = self.checkpoint_dir();
        match checkpoint::load_newest_valid(&dir) {
            Some((tag, loaded)) => {
                if tag != "last" {
                    crate::notice::warn(format!("resuming from checkpoint `{tag}` (epoch {})", loaded.state.epoch));
                }
                self.check_steps_fit(&loaded.state)?;
                checkpoint::load_weights(&self.model.vs, &loaded.weights, &checkpoint::files(&dir, tag).weights)?;
                self.optim.load_state(&loaded.optim).map_err(|e| {
                    Error::Checkpoint(format!(
                        "optimizer state in {} does not fit the optimizer that {} describes (optim.name = {:?}): {e}. \
                         Was its [optim] section edited since the checkpoint was written? Restore it, or start a new \
                         run",
                        dir.display(),
                        self.run_dir.join("config.toml").display(),
                        self.cfg.optim.name.as_str()
                    ))
                })?;
                self.state = loaded.state;
                self.load_averages(&loaded.optim);
            }
            // Killed in the first epoch (or inside its checkpoints' write, after its records): start
            // over, which gives the same run (the same seed) and replaces those records.
            None if !checkpoint::records_finished_epoch(&dir)
                && run::last_epoch_record(&self.run_dir) <= 1
                && !self.run_dir.join("eval.json").exists() =>
            {
                if !self.cfg.model.init_from.is_empty() {
                    // `new` saved the initial weights as `last`: without them the start is lost.
                    return Err(Error::Checkpoint(format!(
                        "cannot resume {}: it started from model.init_from = {:?}, and its initial checkpoint in {} \
                         is missing or unreadable. Start a new run with `microvision train -c {}`",
                        self.run_dir.display(),
                        self.cfg.model.init_from,
                        dir.display(),
                        self.run_dir.join("config.toml").display()
                    )));
                }
                crate::notice::note(format!(
                    "{} finished no epoch yet; training from the start",
                    self.run_dir.display()
                ));
                self.init_from_data();
            }
            None => {
                // load_newest_valid warned about each checkpoint it could not read.
                let unreadable = ["last", "best"].iter().any(|t| checkpoint::files(&dir, t).state.exists());
                return Err(Error::Checkpoint(format!(
                    "cannot resume {}: {} {}, though the run had finished epochs: starting over would overwrite \
                     it, so nothing was changed. Start a new run with `microvision train -c {}`",
                    self.run_dir.display(),
                    if unreadable { "no readable checkpoint in" } else { "no checkpoint in" },
                    if unreadable {
                        format!("{} (see the warnings above)", dir.display())
                    } else {
                        dir.display().to_string()
                    },
                    self.run_dir.join("config.toml").display()
                )));
            }
        }
        Ok(())
    }

    /// `train.on_nan = "restore"`: reload the newest valid checkpoint and scale the learning rate
    /// by `train.nan_lr_factor` (cumulatively), then carry on.
    pub(super) fn restore_after_divergence(&mut self, what: &str, advice: &str) -> Result<()> {
        let dir = self.checkpoint_dir();
        let Some((tag, loaded)) = checkpoint::load_newest_valid(&dir) else {
            let what = format!("{what}; no checkpoint to restore yet");
            return Err(Error::Diverged { what, advice: advice.into() });
        };
        checkpoint::load_weights(&self.model.vs, &loaded.weights, &checkpoint::files(&dir, tag).weights)?;
        self.optim.load_state(&loaded.optim).map_err(Error::Checkpoint)?;
        self.load_averages(&loaded.optim);
        let lr_scale = self.state.lr_scale * self.cfg.train.nan_lr_factor;
        self.state = TrainState { lr_scale, ..loaded.state };
        crate::notice::warn(format!(
            "{what}; restored checkpoint `{tag}` (step {}), learning rate scaled by {lr_scale}",
            self.state.step
        ));
        Ok(())
    }

    /// "`remedies`: resume with --resume RUN --set key=value" (the override is recorded).
    pub(super) fn resume_advice(&self, remedies: &str) -> String {
        let run = self.run_dir.display();
        // After the restores gave up, restoring again is no remedy.
        let restore =
            if self.cfg.train.on_nan == crate::config::OnNan::Restore { "" } else { ", train.on_nan=\"restore\"" };
        format!(
            "{remedies}: resume with `microvision train --resume {run} --set optim.lr=...` (or --set \
             train.grad_clip=...{restore}; recorded in env.json)"
        )
    }

    /// A resume's overrides: the new `config.toml`, and in `env.json` the recipe from now on
    /// and the record of what changed at which step.
    pub(super) fn record_overrides(&self, overrides: &[String]) -> Result<()> {
        crate::fsio::write_atomic(&self.run_dir.join("config.toml"), self.cfg.to_toml().as_bytes())?;
        let mut env = run::Env::read(&self.run_dir).unwrap_or_default();
        env.config = Some(self.cfg.to_toml());
        env.resume_overrides.push(run::recipe::ResumeOverride { step: self.state.step, set: overrides.to_vec() });
        env.write(&self.run_dir)
    }

    /// On resume: the dataset files must be those the run started with (env.json's MD5s), or the
    /// resumed epochs would train or test on other data.
    pub(super) fn check_same_data(&self) -> Result<()> {
        let Some(recorded) = run::Env::read(&self.run_dir).map(|env| env.data_md5) else {
            return Ok(()); // a run without provenance (killed before writing it): nothing to compare
        };
        let now = self.data_md5s()?;
        match recorded.iter().find(|r| !now.contains(r)) {
            None => Ok(()),
            Some((file, md5)) => Err(Error::Data(format!(
                "{}: {file} is not the file this run started with (MD5 {md5} in {}); resuming would mix \
                 datasets. Point data.root back at the original files or start a new run",
                self.data.dir.display(),
                self.run_dir.join("env.json").display()
            ))),
        }
    }

    /// MD5 of each dataset file: those checked while loading (`data.official_files`), else read
    /// now.
    fn data_md5s(&self) -> Result<Vec<(String, String)>> {
        match &self.data.md5 {
            Some(sums) => Ok(sums.clone()),
            None => crate::data::source::source(&self.cfg.data.dataset)?.md5s(&self.data.dir),
        }
    }

    pub(super) fn write_provenance(&self, init_from: Option<run::InitFrom>) -> Result<()> {
        let prov = run::Env {
            git_commit: run::git_commit(),
            git_dirty: run::git_dirty(),
            microvision_version: env!("CARGO_PKG_VERSION").into(),
            tch_version: "0.24.0".into(),
            libtorch_version: env!("MICROVISION_LIBTORCH_VERSION").into(),
            device: device::label(self.device),
            precision: self.precision.name().into(),
            cpu_model: device::cpu_model(),
            cpu_flags: device::cpu_flags(),
            threads: tch::get_num_threads() as i64,
            data_dir: self.data.dir.clone(),
            data_md5: self.data_md5s()?,
            norm_mean: self.data.mean.clone(),
            norm_std: self.data.std.clone(),
            seed: self.cfg.train.seed,
            num_params: self.model.num_params(),
            macs_per_image: self.model.macs_per_image(&model_args(&self.cfg)),
            peak_rss_bytes: run::peak_rss_bytes(),
            init_from,
            config: Some(self.cfg.to_toml()),
            resume_overrides: Vec::new(),
        };
        prov.write(&self.run_dir)
    }
}
