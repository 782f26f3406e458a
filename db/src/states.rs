//! The life cycles of a sandbox, a build and a project live in `vocab` (the pages share them);
//! here they are columns. Every state write is a compare-and-set on `comes_from` (`may_become` in
//! `sandboxes`, `builds` and `projects`), so a late writer never moves a record back.
pub use vocab::{BuildState, ProjectStatus, SandboxState};

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ActiveEnum, Iterable};

    #[test]
    fn stored_text_is_the_api_text() {
        assert_eq!(SandboxState::iter().count(), SandboxState::ALL.len());
        for s in SandboxState::iter() {
            assert_eq!(s.to_value(), s.as_str());
        }
        assert_eq!(BuildState::iter().count(), BuildState::ALL.len());
        for s in BuildState::iter() {
            assert_eq!(s.to_value(), s.as_str());
        }
        assert_eq!(ProjectStatus::iter().count(), ProjectStatus::ALL.len());
        for s in ProjectStatus::iter() {
            assert_eq!(s.to_value(), s.as_str());
        }
    }
}
