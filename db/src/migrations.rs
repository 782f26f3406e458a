//! Schema migrations, applied in order at start-up. Never edit one that has been merged: add a new one.
use sea_orm_migration::prelude::*;

mod m20261123_000001_create_projects;
mod m20261123_000002_create_sandboxes;
mod m20261123_000003_create_instance;
mod m20261123_000004_create_settings;
mod m20261123_000005_create_builds;
mod m20261123_000006_create_accounts;
mod m20261202_000007_admin_tokens;
mod m20261202_000008_email_tokens;
mod m20261203_000009_build_checks;
mod m20261206_000010_link_browsers;
mod m20261206_000011_moderation;
mod m20261207_000013_shares;
mod m20261208_000012_end_reason_spellings;
mod m20261209_000014_replicas;
mod m20261210_000015_sandbox_node;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_projects::Migration),
            Box::new(m20261123_000002_create_sandboxes::Migration),
            Box::new(m20261123_000003_create_instance::Migration),
            Box::new(m20261123_000004_create_settings::Migration),
            Box::new(m20261123_000005_create_builds::Migration),
            Box::new(m20261123_000006_create_accounts::Migration),
            Box::new(m20261202_000007_admin_tokens::Migration),
            Box::new(m20261202_000008_email_tokens::Migration),
            Box::new(m20261203_000009_build_checks::Migration),
            Box::new(m20261206_000010_link_browsers::Migration),
            Box::new(m20261206_000011_moderation::Migration),
            Box::new(m20261208_000012_end_reason_spellings::Migration),
            Box::new(m20261207_000013_shares::Migration),
            Box::new(m20261209_000014_replicas::Migration),
            Box::new(m20261210_000015_sandbox_node::Migration),
        ]
    }
}
