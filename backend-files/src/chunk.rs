//! A chunk of imports on one thread ([`ChunkImport`]): a few consecutive users written
//! step by step together, so that their flushes are issued together and shared. Each user
//! gets exactly the steps and the order of a single import (`token_file::rewrite`); only
//! the steps of different users interleave:
//!
//! 1. each user's token file locked, read and decided, its new file written and its
//!    writeback started (`Staged::start_writeback`): the disk gets every new file of the
//!    chunk at once instead of one per flush;
//! 2. each new file fsynced (mostly a wait for writes already under way);
//! 3. each audit line appended in its user's turn, once the folder is known not to have
//!    failed meanwhile (a user that failed passes its turn);
//! 4. the lines made durable (one commit serves the chunk) and each new file renamed;
//! 5. one folder fsync, each new file's fdatasync and one journal probe for the chunk
//!    (`TokenFolder::settle`).
//!
//! The locks of every user of the chunk are held until the chunk is settled, as a single
//! import holds its user's.

use std::time::Duration;

use whmtoken_core::{AuditTurn, BackendError, ChunkImport, Decision, ImportItem};

use crate::FilesBackend;
use crate::token_file::{Staged, TokenFile};

/// A user's outcome once known.
type Outcome = Option<Result<Decision, BackendError>>;

impl ChunkImport for FilesBackend {
    /// The users from the first on, together (the module's steps), up to the first whose
    /// token file another process holds locked: that one is left for the next call, where
    /// it comes first and waits for its lock, so that the users before it are not held up.
    /// Once `stopped`, no later user is started.
    fn import_chunk(
        &self,
        items: &[ImportItem],
        turns: &[AuditTurn<'_>],
        stopped: &dyn Fn() -> bool,
    ) -> Vec<Result<Decision, BackendError>> {
        let mut outcomes: Vec<Outcome> = items.iter().map(|_| None).collect();
        let targets: Vec<Option<TokenFile<'_>>> = items
            .iter()
            .zip(&mut outcomes)
            .map(|(item, outcome)| {
                self.writable_token_file(&item.user)
                    .map_err(|e| *outcome = Some(Err(e)))
                    .ok()
            })
            .collect();
        let end = self.import_round(items, turns, &targets, stopped, &mut outcomes);
        outcomes
            .into_iter()
            .take(end)
            .map(|outcome| outcome.expect("every user before the end has an outcome"))
            .collect()
    }
}

/// The users of a round, by their index in the call, with their rewrite while it goes on.
type Round<'t> = Vec<(usize, Option<Staged<'t, Decision>>)>;

impl FilesBackend {
    /// Step 1 for the users from the first on: each one's token file locked (the first's
    /// waited for, the others' only when free now), read and decided, its new file written
    /// and its writeback started; up to the first user whose lock is held, or after a
    /// signal. A user that failed has its outcome and no rewrite.
    fn stage<'t>(
        items: &[ImportItem],
        targets: &'t [Option<TokenFile<'t>>],
        stopped: &dyn Fn() -> bool,
        outcomes: &mut [Outcome],
    ) -> Round<'t> {
        let mut staged = Vec::new();
        for (index, (item, target)) in items.iter().zip(targets).enumerate() {
            // After a signal, no user is started (the first is: the pipeline checked).
            if index > 0 && stopped() {
                break;
            }
            let Some(target) = target else {
                staged.push((index, None));
                continue;
            };
            let wait = if index == 0 {
                target.timeout
            } else {
                Duration::ZERO
            };
            let request = &item.request;
            let user = Staged::new(target, wait, true, Some(&request.hash), |tokens| {
                crate::decide_import(request, tokens)
            });
            match user {
                Ok(user) => {
                    user.start_writeback();
                    staged.push((index, Some(user)));
                }
                Err(BackendError::Locked { .. }) if index > 0 => break,
                Err(e) => {
                    outcomes[index] = Some(Err(e));
                    staged.push((index, None));
                }
            }
        }
        staged
    }

    /// [`ChunkImport::import_chunk`]'s steps; returns how many users have an outcome.
    fn import_round(
        &self,
        items: &[ImportItem],
        turns: &[AuditTurn<'_>],
        targets: &[Option<TokenFile<'_>>],
        stopped: &dyn Fn() -> bool,
        outcomes: &mut [Outcome],
    ) -> usize {
        let mut staged = Self::stage(items, targets, stopped, outcomes);
        let end = staged.last().map_or(0, |(index, _)| index + 1);
        let mut fail = |index: usize, error: BackendError| outcomes[index] = Some(Err(error));
        // 2. Each new file flushed.
        for (index, slot) in &mut staged {
            if let Some(Err(e)) = slot.as_ref().map(Staged::sync) {
                fail(*index, e);
                *slot = None;
            }
        }
        // 3. The lines, in the users' turns.
        let mut lines = Vec::with_capacity(staged.len());
        for (index, slot) in &mut staged {
            let Some(user) = slot else {
                turns[*index].pass();
                lines.push(None);
                continue;
            };
            // In the user's turn: a flush that failed while it waited stops it here.
            let turn = &turns[*index];
            let line = turn.hold(|| {
                user.check_folder()?;
                self.accounting
                    .record(turn, &items[*index].user, user.outcome(), self.lock_timeout)
            });
            match line {
                Ok(line) => lines.push(line),
                Err(e) => {
                    fail(*index, e);
                    *slot = None;
                    lines.push(None);
                }
            }
        }
        // 4. The lines durable, then the renames.
        for ((index, slot), line) in staged.iter_mut().zip(lines) {
            if let Some(Err(e)) = slot.as_mut().map(|user| user.place(line)) {
                fail(*index, e);
                *slot = None;
            }
        }
        // 5. The renames durable.
        let placed: Vec<_> = staged
            .iter()
            .filter_map(|(_, slot)| slot.as_ref()?.placed())
            .collect();
        let folder = targets.iter().flatten().next().map(|target| target.folder);
        let settled = folder.map_or(Ok(()), |folder| folder.settle(&placed));
        drop(placed);
        for (index, slot) in staged {
            let Some(user) = slot else { continue };
            outcomes[index] = Some(match &settled {
                Err(failure) if user.placed().is_some() => Err(user.unsettled(failure)),
                _ => Ok(user.finish()),
            });
        }
        end
    }
}
