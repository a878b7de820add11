//! Finishing assets: once the planner has every byte of one, it goes to the finishing
//! thread to be checked whole and renamed into place; it counts as arrived when it is.

use std::io::Write as _;

use super::Run;
use crate::ClientError;

impl Run<'_> {
    pub(super) fn finish_done(&mut self) -> Result<bool, ClientError> {
        for k in 0..self.assets.len() {
            let Some(id) = self.ids[k] else { continue };
            if !self.finished[k] && self.planner.is_done(id) {
                // A live drop's later version of the same path, already in place, wins.
                let superseded = self.assets[k + 1..]
                    .iter()
                    .zip(&self.finished[k + 1..])
                    .any(|(later, done)| *done && later.path == self.assets[k].path);
                self.finished[k] = true;
                if superseded {
                    self.assets[k].discard();
                    self.arrived(k);
                } else {
                    let job = self.assets[k].finishing()?;
                    let gone = || ClientError::Io("the thread finishing assets is gone".into());
                    self.finisher
                        .as_ref()
                        .ok_or_else(gone)?
                        .jobs
                        .send((k, job))
                        .map_err(|_| gone())?;
                }
            }
        }
        Ok(self.in_place.iter().all(|f| *f))
    }

    /// The asset at `k` is in place (or was dropped for a newer version that is).
    pub(super) fn arrived(&mut self, k: usize) {
        self.in_place[k] = true;
        let t = self.now();
        let arrival = t.saturating_sub(self.released[k]);
        self.recorder.arrived(&self.assets[k], arrival);
        if let Some(file) = self.events_file.as_mut() {
            let line = serde_json::json!({
                "event": "arrived",
                "asset_path": self.assets[k].path,
                "arrival_ms": arrival,
                "t_ms": t,
            });
            let _ = writeln!(file, "{line}");
        }
    }
}
