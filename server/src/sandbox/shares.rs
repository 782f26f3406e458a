//! Share links: the owner of a running sandbox lets others watch its terminal live (`view`) or
//! type into it too (`control`). A link carries a 256-bit random token; only its SHA-256 is
//! stored. A share lives while its sandbox runs and its owner has not revoked it; revoking cuts
//! its watchers off at once. What a watcher's frames may do is the terminal proxy's rule.
use super::{
    terminal::{Attachment, TerminalError, Watcher},
    SandboxError, SandboxService,
};
use std::sync::Arc;
use vocab::ShareMode;

/// Share links one sandbox may have at once (revoked ones aside).
pub const MAX_SHARES_PER_SANDBOX: u64 = 10;

/// A share link just made: its row, and its token (shown once, in the link).
pub struct NewShareLink {
    pub share: db::shares::Model,
    pub token: String,
}

/// A live share link as its owner sees it: who watches through it now.
pub struct ShareStatus {
    pub share: db::shares::Model,
    /// One entry per person (not per tab), in the order they arrived.
    pub watchers: Vec<Arc<Watcher>>,
}

/// A live share link as its viewers open it.
pub struct Shared {
    pub share: db::shares::Model,
    pub sandbox: db::sandboxes::Model,
    /// The project's name (its slug if the project is gone).
    pub project_name: String,
}

/// Whether `token` is the shape of a share token (64 hex digits): anything else is not looked up.
fn token_shaped(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

impl SandboxService {
    /// Makes a share link of sandbox `s` (whose owner the caller checked with `owned`).
    pub async fn create_share(
        &self,
        s: &db::sandboxes::Model,
        mode: ShareMode,
    ) -> Result<NewShareLink, SandboxError> {
        if !(s.active && s.state.is_running()) {
            return Err(SandboxError::Ended);
        }
        if db::shares::count_unrevoked(&self.db, &s.id).await? >= MAX_SHARES_PER_SANDBOX {
            return Err(SandboxError::TooManyShares(MAX_SHARES_PER_SANDBOX));
        }
        let token = crate::secrets::random_secret();
        let share = db::shares::create(
            &self.db,
            db::shares::NewShare {
                id: crate::secrets::random_id(),
                sandbox_id: s.id.clone(),
                token_hash: crate::secrets::sha256_hex(&token),
                mode,
            },
        )
        .await?;
        tracing::info!(sandbox = %s.id, share = %share.id, %mode, "share link created");
        Ok(NewShareLink { share, token })
    }

    /// The live share links of sandbox `s` with their watchers (none once it has ended).
    pub async fn shares(&self, s: &db::sandboxes::Model) -> Result<Vec<ShareStatus>, SandboxError> {
        if !s.active {
            return Ok(Vec::new());
        }
        let watching = self.terminals.watchers(&s.id);
        Ok(db::shares::unrevoked_of(&self.db, &s.id)
            .await?
            .into_iter()
            .map(|share| {
                let mut watchers: Vec<Arc<Watcher>> = Vec::new();
                for w in watching.iter().filter(|w| w.share_id == share.id) {
                    if !watchers.iter().any(|seen| seen.identity == w.identity) {
                        watchers.push(w.clone());
                    }
                }
                ShareStatus { share, watchers }
            })
            .collect())
    }

    /// Revokes share `share_id` of sandbox `s`: the link stops working and its watchers are cut
    /// off now.
    pub async fn revoke_share(
        &self,
        s: &db::sandboxes::Model,
        share_id: &str,
    ) -> Result<(), SandboxError> {
        if !db::shares::revoke(&self.db, &s.id, share_id).await? {
            return Err(SandboxError::NoSuchShare);
        }
        let cut = self.terminals.revoke_share(&s.id, share_id);
        tracing::info!(sandbox = %s.id, share = %share_id, watchers = cut, "share link revoked");
        Ok(())
    }

    /// The live share a link's token opens.
    pub async fn shared(&self, token: &str) -> Result<Shared, SandboxError> {
        if !token_shaped(token) {
            return Err(SandboxError::NoSuchShare);
        }
        let hash = crate::secrets::sha256_hex(&token.to_ascii_lowercase());
        let share = db::shares::by_token_hash(&self.db, &hash)
            .await?
            .ok_or(SandboxError::NoSuchShare)?;
        self.live(share).await
    }

    /// The live share `id` (a watcher's socket names it; its ticket was checked).
    pub async fn shared_by_id(&self, id: &str) -> Result<Shared, SandboxError> {
        let share = db::shares::get(&self.db, id)
            .await?
            .ok_or(SandboxError::NoSuchShare)?;
        self.live(share).await
    }

    async fn live(&self, share: db::shares::Model) -> Result<Shared, SandboxError> {
        if share.revoked_at.is_some() {
            return Err(SandboxError::ShareRevoked);
        }
        let sandbox = db::sandboxes::get(&self.db, &share.sandbox_id)
            .await?
            .ok_or(SandboxError::NoSuchShare)?;
        if !(sandbox.active && sandbox.state.is_running()) {
            return Err(SandboxError::ShareEnded);
        }
        let project_name = db::projects::by_id(&self.db, sandbox.project_id)
            .await?
            .map_or_else(|| sandbox.project_slug.clone(), |p| p.name);
        Ok(Shared {
            share,
            sandbox,
            project_name,
        })
    }

    /// Cuts off this server's watchers of links revoked through another app server (a
    /// revocation cuts off the revoking server's own at once); a per-replica job, every
    /// `REVOCATION_FOLLOW`, so a revoked viewer anywhere is gone within that.
    pub async fn follow_revocations(&self) -> Result<usize, db::DbErr> {
        let mut cut = 0;
        for (sandbox, share) in self.terminals.watched_shares() {
            let live = db::shares::get(&self.db, &share)
                .await?
                .is_some_and(|s| s.revoked_at.is_none());
            if !live {
                cut += self.terminals.revoke_share(&sandbox, &share);
            }
        }
        Ok(cut)
    }

    /// Attaches `watcher` to the shell of the shared sandbox. A revocation that landed between
    /// the caller's check and this attach is caught here: the attachment then ends at once, as
    /// if it had been cut off (revocations write the row before they cut watchers off).
    pub async fn watch(
        &self,
        shared: &Shared,
        watcher: Watcher,
    ) -> Result<Attachment, TerminalError> {
        let (sandbox, share) = (&shared.sandbox.id, &shared.share.id);
        let attachment = self.terminals.watch(sandbox, watcher).await?;
        let still_live = matches!(
            db::shares::get(&self.db, share).await,
            Ok(Some(s)) if s.revoked_at.is_none()
        );
        if !still_live {
            self.terminals.revoke_share(sandbox, share);
        }
        Ok(attachment)
    }
}

#[cfg(test)]
mod tests {
    use super::token_shaped;

    #[test]
    fn only_token_shaped_links_are_looked_up() {
        assert!(token_shaped(&"ab".repeat(32)));
        assert!(!token_shaped(&"ab".repeat(31)));
        assert!(!token_shaped(&"zz".repeat(32)));
        assert!(!token_shaped(&format!("{}/x", "a".repeat(62))));
    }
}
