//! What happens to a person's and a project's things when they go: a ban, an account's
//! deletion (its projects hidden or handed over), a project's removal. Each crosses the
//! domains (sandboxes, builds, projects, accounts), so each is one method here: its database
//! writes are one transaction (all or nothing), and the engine work follows the commit. A
//! container whose removal fails then stays `stopping`, which the reaper retries.
use crate::{
    accounts::{
        email_problem,
        mail::{Mail, Mailer},
    },
    builds::BuildService,
    sandbox::{SandboxError, SandboxService},
};
use db::{accounts, DatabaseConnection};
use std::sync::Arc;
use vocab::{EndReason, FieldProblem, OwnerKey, ProjectFate};

/// The error a build cancelled by its owner's ban shows.
const CANCELLED_BY_BAN: &str = "The build was cancelled.";

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("{}", .0.message)]
    Invalid(FieldProblem),
    #[error("There is no such account.")]
    NoAccount,
    #[error("A build of this project is running: cancel it first.")]
    BuildRunning,
    #[error("database: {0}")]
    Db(#[from] db::DbErr),
    #[error("{0}")]
    Sandbox(#[from] SandboxError),
}

/// What a ban did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Banned {
    pub sandboxes_stopped: usize,
    pub builds_cancelled: usize,
    pub projects_hidden: u64,
}

/// A leaving account's choice for its projects: hidden, or handed over to the account of
/// `successor_email`.
#[derive(Debug, Clone)]
pub struct Leaving {
    pub projects: ProjectFate,
    pub successor_email: String,
}

pub struct Lifecycle {
    db: DatabaseConnection,
    sandboxes: Arc<SandboxService>,
    builds: Arc<BuildService>,
    registry: registry::Registry,
    mail: Arc<Mailer>,
}

impl Lifecycle {
    pub fn new(
        db: DatabaseConnection,
        sandboxes: Arc<SandboxService>,
        builds: Arc<BuildService>,
        registry: registry::Registry,
        mail: Arc<Mailer>,
    ) -> Self {
        Self {
            db,
            sandboxes,
            builds,
            registry,
            mail,
        }
    }

    /// Bans account `user_id`: in one transaction it is marked banned, its sessions and tokens
    /// end, its running sandbox is marked stopping, its queued builds are cancelled and its
    /// projects hidden; then the sandbox's container is removed and running builds are told to
    /// stop. (An unban does not bring the projects back: an admin shows them one by one.)
    pub async fn ban(&self, user_id: i32) -> Result<Banned, LifecycleError> {
        let done = accounts::ban(&self.db, user_id, CANCELLED_BY_BAN)
            .await?
            .ok_or(LifecycleError::NoAccount)?;
        for id in &done.builds {
            self.builds.cancel(id).await?;
        }
        let mut stopped = 0;
        for id in &done.sandboxes {
            self.sandboxes.stop(id, EndReason::OwnerBanned).await?;
            stopped += 1;
        }
        tracing::info!(
            user = user_id,
            sandboxes = stopped,
            builds = done.builds.len(),
            projects_hidden = done.projects_hidden,
            "account banned"
        );
        Ok(Banned {
            sandboxes_stopped: stopped,
            builds_cancelled: done.builds.len(),
            projects_hidden: done.projects_hidden,
        })
    }

    /// Lifts a ban (sessions and projects stay as the ban left them).
    pub async fn unban(&self, user_id: i32) -> Result<(), LifecycleError> {
        accounts::set_banned(&self.db, user_id, false).await?;
        Ok(())
    }

    /// Deletes `account`: in one transaction its running sandbox is marked stopping, its
    /// projects are hidden or handed over, its tries and builds move to an anonymous key and its
    /// personal data goes; then the sandbox's container is removed and the successor is told.
    /// The answer never says whether the successor's address has an account: if it has none
    /// (or is suspended), the projects are hidden. Returns how many projects moved.
    pub async fn delete_account(
        &self,
        account: &accounts::Account,
        leaving: &Leaving,
    ) -> Result<u64, LifecycleError> {
        let invalid = |field: &str, message: &str| {
            Err(LifecycleError::Invalid(FieldProblem::new(field, message)))
        };
        let mut successor = None;
        let fate = match leaving.projects {
            ProjectFate::Hide => accounts::ProjectFate::Hide,
            ProjectFate::HandOver => {
                let email = &leaving.successor_email;
                if let Some(m) = email_problem(email) {
                    return invalid("successor_email", &m);
                }
                if accounts::fold_email(email) == account.email {
                    return invalid(
                        "successor_email",
                        "Name another person's email: this account is the one leaving.",
                    );
                }
                match accounts::by_email(&self.db, email).await? {
                    Some(s) if !s.banned => {
                        successor = Some(s.email.clone());
                        accounts::ProjectFate::HandOver { to_user: s.id }
                    }
                    _ => accounts::ProjectFate::Hide,
                }
            }
        };
        let anonymous = OwnerKey::Gone(crate::secrets::random_id());
        let gone = accounts::delete(&self.db, account.id, &fate, &anonymous).await?;
        for id in &gone.sandboxes {
            self.sandboxes.stop(id, EndReason::AccountDeleted).await?;
        }
        tracing::info!(
            user = account.id,
            projects = gone.projects_moved,
            "account deleted"
        );
        if let (Some(to), true) = (successor, gone.projects_moved > 0) {
            self.mail.send(
                &to,
                Mail::ProjectsHandedOver {
                    count: gone.projects_moved,
                },
            );
        }
        Ok(gone.projects_moved)
    }

    /// Deletes a project: hidden first (no new Try), its sandboxes stopped, its images deleted
    /// from the registry, then the project with its builds; its tries stay, anonymised. Refused
    /// while a build runs.
    pub async fn remove_project(
        &self,
        p: &db::projects::Model,
        by_admin: bool,
    ) -> Result<(), LifecycleError> {
        if db::builds::active_for_project(&self.db, p.id)
            .await?
            .is_some()
        {
            return Err(LifecycleError::BuildRunning);
        }
        db::projects::set_status(&self.db, p.id, db::ProjectStatus::Hidden).await?;
        for s in db::sandboxes::all_active(&self.db).await? {
            if s.project_id == p.id {
                self.sandboxes
                    .stop(&s.id, EndReason::ProjectDeleted)
                    .await?;
            }
        }
        if let Some(repo) = &p.image_repo {
            if let Err(e) = self.registry.retain(repo, &[], &[]).await {
                tracing::warn!(project = %p.slug, error = %e, "could not delete the project's images");
            }
        }
        db::projects::delete(&self.db, p.id).await?;
        tracing::info!(project = %p.slug, by_admin, "project deleted");
        Ok(())
    }
}
