//! Data shared by the server and the browser: what pages and the JSON API exchange.
use serde::{Deserialize, Serialize};
pub use vocab::{
    BuildState, EndReason, FieldProblem, LinkKind, LinkState, OwnerKey, ProjectFate, ProjectStatus,
    Role, SandboxState, ShareMode,
};

/// Who is asking: a signed-in user or a visitor with a signed cookie. Set by the server's
/// identity middleware on every request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// A visitor's or an account's key: the owner of sandboxes and tries (JSON: `v:…` / `u:…`).
    pub key: OwnerKey,
    pub signed_in: bool,
    pub is_admin: bool,
    /// The account, when signed in.
    pub user: Option<UserBrief>,
    /// The CSRF token state-changing requests of this browser must carry (`x-csrf-token`).
    #[serde(default)]
    pub csrf: String,
    /// Authenticated by an API token (no cookies involved, so no CSRF token needed).
    #[serde(default)]
    pub via_token: bool,
}

/// The signed-in account as pages and `GET /api/me` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserBrief {
    pub id: i32,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub has_password: bool,
    /// Whether the person proved they read this address (a mailed link, or their provider).
    #[serde(default)]
    pub email_verified: bool,
}

/// The answer to a sign-up or a password-reset request: the same whether or not the address has
/// an account (what happens next is in the mail).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailSent {
    pub email: String,
}

/// `GET /api/auth/link?token=`: what a mailed link is, before it is used, so its page can name
/// the address and refuse a used or expired link at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkInfo {
    /// `signup`, `reset` or `verify`.
    pub kind: LinkKind,
    /// The address the link was mailed to.
    pub email: String,
    /// `valid`, `used` or `expired`.
    pub state: LinkState,
    /// Whether this browser asked for the link: only then does using it sign this browser in.
    pub this_browser: bool,
    /// This browser's Tries, which it may bring into the account (`bring`); 0 in another browser.
    pub tries: u64,
}

/// `GET /api/me` and the header's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub signed_in: bool,
    pub user: Option<UserBrief>,
    pub is_admin: bool,
    pub csrf_token: String,
    /// OAuth providers configured on this site (`github`, `google`).
    pub providers: Vec<String>,
    /// This site's public address (for examples people copy).
    #[serde(default)]
    pub site: String,
}

/// A project as a card in lists (also the `GET /api/projects` item).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectCard {
    pub slug: String,
    pub name: String,
    pub summary: String,
    pub category: String,
    pub tags: Vec<String>,
    pub tries: i64,
}

/// `GET /api/projects/{slug}`: one project with its image, as the API gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectInfo {
    pub slug: String,
    pub name: String,
    pub summary: String,
    /// Markdown, as the maintainer wrote it.
    pub description: String,
    /// Sanitised HTML rendered from `description`.
    pub description_html: String,
    pub category: String,
    pub tags: Vec<String>,
    pub tries: i64,
    pub homepage: Option<String>,
    pub repository: Option<String>,
    pub license: Option<String>,
    /// `repo@digest` of the image a Try starts.
    pub image: Option<String>,
    pub image_size: Option<i64>,
    pub status: ProjectStatus,
    pub egress: bool,
    pub created_at: String,
    pub updated_at: String,
    /// In the catalogue (Explore, search, trending); false while it waits for an admin's review.
    #[serde(default)]
    pub listed: bool,
    /// Printed in the terminal before a Try's first prompt.
    #[serde(default)]
    pub welcome: Option<String>,
}

/// `GET /api/recommendations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendations {
    pub items: Vec<ProjectCard>,
    /// False: no history yet, so these are a tour of the categories (one project each) that
    /// leaves out the trending ones.
    pub personal: bool,
}

/// The answer to a log-in, a sign-up link or a password reset: who is signed in now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedIn {
    pub signed_in: bool,
    pub user: UserBrief,
    pub is_admin: bool,
}

/// The project page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectDetail {
    pub card: ProjectCard,
    /// Sanitised HTML rendered from the Markdown description.
    pub description_html: String,
    pub homepage: Option<String>,
    pub repository: Option<String>,
    pub license: Option<String>,
    pub image_size: Option<i64>,
    pub status: ProjectStatus,
    pub egress: bool,
    pub tryable: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectPage {
    pub project: ProjectDetail,
    /// The newest build, when there is one (maintainers' projects).
    pub latest_build: Option<BuildView>,
    /// The viewer maintains the project (or is an admin): Rebuild and Edit are theirs.
    pub can_maintain: bool,
    /// How the image a Try starts was made (the build that is live), when a build made it.
    pub recipe: Option<RecipeView>,
    /// The visitor's running sandbox for this project, so a reload re-attaches to it.
    pub sandbox: Option<SandboxInfo>,
}

/// The recipe of the image a project serves, as its page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipeView {
    /// `dockerfile`, `script` (converted from an install script) or `image` (imported as it is).
    pub kind: String,
    /// The Dockerfile built (empty for an imported image).
    pub dockerfile: String,
    /// The install script the Dockerfile was converted from (`script`), or the reference of the
    /// imported image (`image`).
    pub source: Option<String>,
    pub build_id: String,
    /// When the build was made (UTC, to the minute).
    pub built_at: String,
}

/// A project's metadata as the publish and edit forms hold it (all but the slug).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProjectMetadata {
    pub name: String,
    pub summary: String,
    pub description: String,
    pub category: String,
    pub tags: Vec<String>,
    pub homepage: Option<String>,
    pub repository: Option<String>,
    pub license: Option<String>,
    pub welcome: Option<String>,
}

/// The edit page of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectEditInfo {
    pub slug: String,
    pub name: String,
    pub signed_in: bool,
    /// The viewer maintains the project or is an admin; only then is `metadata` there.
    pub may_edit: bool,
    pub metadata: Option<ProjectMetadata>,
    pub categories: Vec<String>,
}

/// A sandbox as the owner sees it (`GET /api/sandboxes/{id}` and the 201 of a Try).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxInfo {
    pub id: String,
    pub project: String,
    pub state: SandboxState,
    pub terminal_ws: String,
    /// RFC 3339.
    pub expires_at: String,
    /// Seconds left, computed by the server (the browser's clock may be off).
    pub seconds_left: i64,
    pub can_extend: bool,
    /// Why it ended, once it has (`idle`, `expired`, `stopped_by_admin`, …; pages show its
    /// `sentence()`).
    pub end_reason: Option<EndReason>,
    /// Seconds until it ends for want of a keystroke (the idle timeout), while it runs.
    pub idle_seconds_left: Option<i64>,
    /// TCP ports listening in it, each with its web preview (empty when previews are off).
    #[serde(default)]
    pub ports: Vec<OpenPort>,
}

/// A port listening in a sandbox and the address that opens its web preview in a new tab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenPort {
    pub port: u16,
    pub preview_url: String,
}

/// `GET /api/sandboxes/{id}/ports`: the open ports, and the largest upload the sandbox takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxPorts {
    pub ports: Vec<OpenPort>,
    pub upload_max_bytes: u64,
    /// Previews are served by this installation.
    pub previews: bool,
}

/// `POST /api/sandboxes/{id}/shares`: a new share link of the sandbox's terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewShare {
    pub mode: ShareMode,
}

/// A share link as its owner sees it (the 201 of `POST /api/sandboxes/{id}/shares` and the
/// items of `GET /api/sandboxes/{id}/shares`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareInfo {
    pub id: String,
    /// The link, `{site}/watch/{token}`: only in the answer that made it (the site keeps the
    /// token's hash, never the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub mode: ShareMode,
    /// RFC 3339.
    pub created_at: String,
    /// People watching through it now.
    pub watching: usize,
    /// Their names, "anonymous" for visitors without an account.
    pub viewers: Vec<String>,
}

/// `GET /api/sandboxes/{id}/shares`: the live share links, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareList {
    pub items: Vec<ShareInfo>,
}

/// `GET /api/shares/{token}`: a shared session as its viewers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedSession {
    /// The share link's id (its terminal socket is `terminal_ws`).
    pub id: String,
    /// The project's slug and name.
    pub project: String,
    pub project_name: String,
    pub mode: ShareMode,
    /// The sandbox's state (`starting` or `ready` while the share lives).
    pub state: SandboxState,
    /// The shared sandbox: what its web previews, once viewers get them, hang off.
    pub sandbox_id: String,
    /// RFC 3339: the share ends with the sandbox.
    pub expires_at: String,
    pub seconds_left: i64,
    /// The viewer's terminal WebSocket (`/shares/{id}/ws`), opened with a ticket from
    /// `POST /api/shares/{token}/ticket`.
    pub terminal_ws: String,
    /// Ports listening in the sandbox, each with a preview address that opens for this link.
    #[serde(default)]
    pub ports: Vec<OpenPort>,
}

/// What the `/watch/{token}` page found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShareLookup {
    Live(SharedSession),
    /// Ended or revoked: the sentence to show.
    Gone(String),
    NotFound,
}

/// A project on its maintainer's account page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MyProject {
    pub slug: String,
    pub name: String,
    /// building | live | failed | hidden
    pub status: ProjectStatus,
    pub tries: i64,
    /// The newest build: (id, state).
    pub latest_build: Option<(String, BuildState)>,
    /// False while it waits for an admin's review (moderation).
    #[serde(default)]
    pub listed: bool,
}

/// A row of My Containers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxRow {
    pub id: String,
    pub project: String,
    pub state: SandboxState,
    pub started_at: String,
    pub duration_secs: i64,
    pub end_reason: Option<EndReason>,
    pub launch_ms: Option<i64>,
    /// The project's display name (the slug if the project is gone; "deleted project" once its
    /// maintainer or an admin deleted it, and then `project` is empty).
    #[serde(default)]
    pub project_name: String,
    /// How long ago it started (no time zones to get wrong).
    #[serde(default)]
    pub started_ago_secs: i64,
    /// Time left while it runs.
    pub seconds_left: Option<i64>,
}

/// The admin's featured project and line of text, shown at the top of the home page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeaturedBanner {
    pub card: ProjectCard,
    pub line: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HomeData {
    pub featured: Option<FeaturedBanner>,
    pub trending: Vec<ProjectCard>,
    /// "Open source you may like": in proportion to the visitor's tries per category.
    pub for_you: Vec<ProjectCard>,
    /// False when the visitor has no history yet (then `for_you` is a tour of the categories
    /// without what Trending shows; the section is hidden when that leaves nothing).
    pub for_you_personal: bool,
    pub newest: Vec<ProjectCard>,
    pub categories: Vec<String>,
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResults {
    pub items: Vec<ProjectCard>,
    pub total: u64,
    pub page: u64,
    pub per_page: u64,
    /// Nothing matched the words as typed: these are the results for this close name instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub searched_for: Option<String>,
    /// The catalogue's categories, for the search page's filter (not sent by the JSON API).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
}

/// The orders the search page offers: (URL value, label).
pub const SORTS: [(&str, &str); 3] = [
    ("relevance", "Best match"),
    ("newest", "Newest"),
    ("name", "Name (A–Z)"),
];

/// JSON body of every API error: `{"error": code, "message": sentence, …detail}`. The server
/// writes it (`ApiError`'s response) and the pages read it (`client::Reply::error`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// A stable code the page may branch on (`queued`, `sandbox_active`, `invalid`, …).
    pub error: String,
    /// One sentence for a person.
    pub message: String,
    /// Extra fields of some errors: `sandbox`, `queue_position`, `problems`.
    #[serde(flatten)]
    pub detail: serde_json::Map<String, serde_json::Value>,
}

impl ApiErrorBody {
    /// The `problems` of an `invalid` answer (none for any other).
    pub fn problems(&self) -> Vec<FieldProblem> {
        self.detail
            .get("problems")
            .and_then(|p| serde_json::from_value(p.clone()).ok())
            .unwrap_or_default()
    }
}

pub const PER_PAGE: u64 = 24;

/// A failed build's error as the page heads it: the lines to read first (the step's own error
/// lines, then `line N: <the recipe's line>`) and the engine's sentence, shown last and small.
/// Other failures are one sentence, with no engine part.
pub fn failure_parts(error: &str) -> (Vec<String>, Option<String>) {
    let mut lines: Vec<String> = error.lines().map(str::to_string).collect();
    match lines.last() {
        Some(last) if lines.len() > 1 && last.contains("returned a non-zero code") => {
            let engine = lines.pop();
            (lines, engine)
        }
        _ => (vec![error.to_string()], None),
    }
}

/// About how long a queued build waits for a builder: `place` (1 = next) over `builders`
/// working through builds of `typical_secs` each.
pub fn start_estimate(place: Option<u64>, typical_secs: Option<i64>, builders: u64) -> Option<i64> {
    let (place, typical) = (place?, typical_secs.filter(|t| *t > 0)?);
    Some(place.div_ceil(builders.max(1)) as i64 * typical)
}

/// "1st", "2nd", "3rd", "4th", "11th", "21st".
pub fn ordinal(n: u64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// The line of a queued build, e.g. "2nd in line for a builder · waiting 0:58 · about 2 min".
pub fn queue_line(place: Option<u64>, waited_secs: i64, estimate_secs: Option<i64>) -> String {
    let w = waited_secs.max(0);
    let mut out = match place {
        Some(p) => format!("{} in line for a builder", ordinal(p)),
        None => "Waiting for a builder".to_string(),
    };
    out.push_str(&format!(" · waiting {}:{:02}", w / 60, w % 60));
    if let Some(e) = estimate_secs {
        let minutes = (e as f64 / 60.0).ceil().max(1.0) as i64;
        out.push_str(&format!(" · about {minutes} min"));
    }
    out
}

/// An image size in decimal megabytes with one decimal ("143.2 MB"), the same on every page.
pub fn human_size(bytes: i64) -> String {
    format!("{:.1} MB", bytes.max(0) as f64 / 1_000_000.0)
}

/// "2 min", "1 h 05 min": a duration as a person reads it.
pub fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    if secs < 60 {
        format!("{secs} s")
    } else if secs < 3600 {
        format!("{} min", secs / 60)
    } else {
        format!("{} h {:02} min", secs / 3600, (secs % 3600) / 60)
    }
}

/// "mm:ss" (or "h:mm:ss") for the countdown.
pub fn clock(secs: i64) -> String {
    let s = secs.max(0);
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_failure_puts_the_engine_last() {
        let (head, engine) = failure_parts(
            "E: Unable to locate package x\nline 2: RUN apt-get install -y x\nThe command '/bin/sh -c apt-get install -y x' returned a non-zero code: 100",
        );
        assert_eq!(
            head,
            [
                "E: Unable to locate package x",
                "line 2: RUN apt-get install -y x"
            ]
        );
        assert!(engine.is_some_and(|e| e.ends_with("code: 100")));
        let (head, engine) = failure_parts("The build was cancelled.");
        assert_eq!(
            (head, engine),
            (vec!["The build was cancelled.".to_string()], None)
        );
    }

    #[test]
    fn the_queue_line_says_place_wait_and_estimate() {
        assert_eq!(
            queue_line(Some(2), 58, start_estimate(Some(2), Some(60), 1)),
            "2nd in line for a builder · waiting 0:58 · about 2 min"
        );
        assert_eq!(
            queue_line(Some(1), 0, None),
            "1st in line for a builder · waiting 0:00"
        );
        assert_eq!(
            queue_line(None, 125, Some(30)),
            "Waiting for a builder · waiting 2:05 · about 1 min"
        );
        assert_eq!(start_estimate(Some(3), Some(100), 2), Some(200));
        assert_eq!(start_estimate(Some(3), None, 2), None);
        for (n, o) in [
            (1, "1st"),
            (2, "2nd"),
            (3, "3rd"),
            (4, "4th"),
            (11, "11th"),
            (12, "12th"),
            (13, "13th"),
            (21, "21st"),
            (102, "102nd"),
        ] {
            assert_eq!(ordinal(n), o);
        }
    }

    #[test]
    fn image_sizes_are_decimal_megabytes() {
        assert_eq!(human_size(143_212_345), "143.2 MB");
        assert_eq!(human_size(136 * 1_048_576), "142.6 MB");
        assert_eq!(human_size(0), "0.0 MB");
        assert_eq!(human_size(-1), "0.0 MB");
    }

    #[test]
    fn clock_formats_minutes_and_hours() {
        assert_eq!(clock(0), "00:00");
        assert_eq!(clock(125), "02:05");
        assert_eq!(clock(3725), "1:02:05");
        assert_eq!(clock(-5), "00:00");
    }

    #[test]
    fn human_duration_reads_naturally() {
        assert_eq!(human_duration(42), "42 s");
        assert_eq!(human_duration(600), "10 min");
        assert_eq!(human_duration(3900), "1 h 05 min");
    }
}

/// One build, as the build page and the project page show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildView {
    pub id: String,
    pub project: String,
    pub project_name: String,
    /// queued | running | pushing | checking | succeeded | failed | cancelled
    pub state: BuildState,
    pub step: i32,
    pub steps: i32,
    pub error: Option<String>,
    pub log: String,
    pub source_kind: String,
    pub dockerfile: String,
    /// An import's image reference (`source_kind` "image"), which it has instead of a Dockerfile.
    #[serde(default)]
    pub image_source: Option<String>,
    pub created_at: String,
    /// The viewer may cancel it (they started it, maintain the project, or are an admin).
    pub can_cancel: bool,
    /// While queued: its place in line (1 = next).
    pub queue_position: Option<u64>,
    /// How long a build takes here (median of recent ones), for the wait estimate.
    pub typical_secs: Option<i64>,
    /// The smoke check this build runs before going live.
    pub check: Option<SmokeCheck>,
    /// While queued: seconds since it was queued (the page counts on from there).
    pub waited_secs: i64,
    /// While queued: about how long until a builder takes it.
    pub estimate_secs: Option<i64>,
}

impl SmokeCheck {
    /// The check a build row carries, if any.
    pub fn of(command: Option<&str>, expect: Option<&str>) -> Option<Self> {
        command.map(|command| Self {
            command: command.to_string(),
            expect: expect.unwrap_or_default().to_string(),
        })
    }
}

/// A line-numbered note about a recipe (a converter note or a Dockerfile warning).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipeNote {
    pub line: Option<usize>,
    pub message: String,
}

impl RecipeNote {
    /// "line 3: …", or the message alone when it is about the whole recipe.
    pub fn shown(&self) -> String {
        match self.line {
            Some(l) => format!("line {l}: {}", self.message),
            None => self.message.clone(),
        }
    }
}

/// `POST /api/recipe/convert`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvertRequest {
    #[serde(default)]
    pub script: String,
}

/// The answer to `POST /api/recipe/convert`: the Dockerfile a script becomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Converted {
    pub dockerfile: String,
    pub base_image: String,
    pub notes: Vec<RecipeNote>,
    /// A smoke check proposed from what the script installs (the form fills it in when empty).
    pub check: Option<SmokeCheck>,
}

/// A build's smoke check: run in a sandbox of the new image before it goes live; its output must
/// contain `expect` (when not empty) and it must exit 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmokeCheck {
    pub command: String,
    #[serde(default)]
    pub expect: String,
}

/// `POST /api/recipe/check`, and the body of a rebuild with an edited Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRequest {
    #[serde(default)]
    pub dockerfile: String,
}

/// The answer to `POST /api/recipe/check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checked {
    pub steps: usize,
    pub base_image: String,
    pub warnings: Vec<RecipeNote>,
}

/// 202 to `POST /api/projects` (with `slug`) and `POST /api/projects/{slug}/builds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildAccepted {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    pub build_id: String,
    pub build_url: String,
}

/// One build as the API gives it (`GET /api/builds/{id}`; items of a project's build list,
/// which leave out the Dockerfile and the queue fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRecord {
    pub id: String,
    pub project: String,
    /// queued | running | pushing | checking | succeeded | failed | cancelled
    pub state: BuildState,
    pub step: i32,
    pub steps: i32,
    pub error: Option<String>,
    pub source_kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// An import's image reference (`source_kind` "image").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_source: Option<String>,
    /// `repo@digest` once pushed.
    pub image: Option<String>,
    pub image_tag: Option<String>,
    pub image_size: Option<i64>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// While queued: its place in line (1 = next). Only on `GET /api/builds/{id}`.
    pub queue_position: Option<u64>,
    /// How long a build takes here (median of recent ones). Only on `GET /api/builds/{id}`.
    pub typical_secs: Option<i64>,
    /// The smoke check run before the image goes live.
    pub check: Option<SmokeCheck>,
    /// While queued: seconds since it was queued, and about how long until a builder takes it.
    #[serde(default)]
    pub waited_secs: Option<i64>,
    #[serde(default)]
    pub estimate_secs: Option<i64>,
}

/// `POST /api/projects/{slug}/builds` from a failed build's "Edit and retry": the Dockerfile and
/// the smoke check (an empty command removes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuildRequest {
    pub dockerfile: String,
    pub check_command: String,
    pub check_expect: String,
}

/// A list answer: `{"items": […]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Items<T> {
    pub items: Vec<T>,
}

/// 200 to `DELETE /api/builds/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildCancelling {
    pub id: String,
    pub cancelling: bool,
}

/// The `step` event of a build's log stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildStep {
    pub step: i32,
    pub steps: i32,
}

/// The `state` event of a build's log stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildStateChange {
    pub state: BuildState,
    pub error: Option<String>,
}

/// The featured banner as stored and as the admin sets it (`PUT /api/admin/featured`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FeaturedSetting {
    pub slug: String,
    pub line: String,
}

/// `GET /api/admin/overview`: live numbers and the banner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AdminOverview {
    pub running: u64,
    pub queue: u64,
    pub tries_today: u64,
    pub builds_queued: i64,
    pub builds_running: i64,
    pub users: u64,
    pub featured: Option<FeaturedSetting>,
}

/// One running sandbox on the admin page, with its live usage when the engine answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminSandbox {
    pub id: String,
    /// The owner's email, "visitor #1a2b3c · <ip>" (a short hash of the visitor's key, and the
    /// address their sandbox came from) or "deleted account".
    pub owner: String,
    pub project: String,
    pub state: SandboxState,
    pub age_secs: i64,
    pub seconds_left: i64,
    pub cpu_percent: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    /// The sandbox node it runs on (cluster runtime; `platform` for the platform host's own
    /// engine); None on a single engine.
    #[serde(default)]
    pub node: Option<String>,
}

/// One sandbox node of the cluster runtime, as the admin page shows it.
pub use vocab::SandboxNode as AdminNode;

/// `GET /api/admin/sandboxes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AdminSandboxes {
    pub sandboxes: Vec<AdminSandbox>,
    /// Pre-started sandboxes waiting for a visitor, per project (the warm pool), most first.
    #[serde(default)]
    pub pool: Vec<PoolShare>,
    /// What isolates the sandboxes, with its version (`runsc version 0.0~20240729.0`).
    #[serde(default)]
    pub runtime: String,
    /// The sandbox nodes (cluster runtime); None on a single engine.
    #[serde(default)]
    pub nodes: Option<Vec<AdminNode>>,
}

/// A project's share of the warm pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolShare {
    pub project: String,
    pub members: u64,
}

/// One account on the admin page (`PATCH /api/admin/users/{id}` answers it too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminUser {
    pub id: i32,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub banned: bool,
    pub created_at: String,
    pub last_login_at: Option<String>,
}

/// `GET /api/admin/users?q=&page=` (page from 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AdminUsers {
    pub users: Vec<AdminUser>,
    pub total: u64,
    pub page_size: u64,
}

/// `PATCH /api/admin/users/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banned: Option<bool>,
}

/// One project (any status) with its image on the admin page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminProject {
    pub slug: String,
    pub name: String,
    pub status: ProjectStatus,
    pub category: String,
    pub tries: i64,
    /// The maintainer's email; None for the site's own catalogue.
    pub maintainer: Option<String>,
    /// `repo@digest`.
    pub image: Option<String>,
    pub image_size: Option<i64>,
    pub updated_at: String,
    /// False while it waits for an admin's review (moderation).
    #[serde(default)]
    pub listed: bool,
}

/// `GET /api/admin/projects?q=&page=` (page from 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AdminProjects {
    pub projects: Vec<AdminProject>,
    pub total: u64,
    pub page_size: u64,
}

/// `PATCH /api/admin/projects/{slug}`, and its answer's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectChange {
    pub hidden: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectStatusNow {
    pub slug: String,
    pub status: ProjectStatus,
}

/// One personal API token as its owner sees it (never the secret, only its last characters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: i32,
    pub name: String,
    /// "…abcd": the end of the secret, to tell tokens apart.
    pub hint: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub admin: bool,
}

/// `GET /api/me/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ApiTokens {
    pub tokens: Vec<ApiToken>,
}

/// `POST /api/me/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTokenRequest {
    pub name: String,
    /// An admin token carries the account's admin role; others act as a plain user.
    #[serde(default)]
    pub admin: bool,
}

/// 201 to `POST /api/me/tokens`: the token, with its secret shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewToken {
    #[serde(flatten)]
    pub token: ApiToken,
    #[serde(rename = "token")]
    pub secret: String,
}

/// The publish form's choices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishInfo {
    pub categories: Vec<String>,
    pub base_image: String,
    /// Where images may be imported from; empty: importing is off.
    #[serde(default)]
    pub import_registries: Vec<String>,
    #[serde(default)]
    pub import_max_mb: u64,
}
