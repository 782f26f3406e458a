//! A maintainer's submission: every field checked server-side (field-level messages), the recipe
//! validated (line-numbered problems) before anything is stored, then project + queued build
//! written in one transaction, so a refused or failed submission leaves nothing behind.
use crate::builds::check::{SmokeCheck, MAX_CHECK_COMMAND, MAX_CHECK_EXPECT};
use crate::builds::BuildService;
use db::projects::{fold, CATEGORIES};
use db::TransactionTrait;
use serde::Deserialize;
use vocab::{BuildState, FieldProblem, OwnerKey};

/// Why a submission or rebuild was refused; `http::error` maps each to its status.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{} FieldProblem::new(s) with the submission", .0.len())]
    Invalid(Vec<FieldProblem>),
    #[error("The build engine is not answering right now. Please try again in a minute.")]
    BuildEngineDown(#[source] bollard::errors::Error),
    #[error("A project called '{0}' already exists. Choose another slug (or rebuild it, if it is yours).")]
    SlugTaken(String),
    #[error("You already maintain {0} projects, the most one account may publish.")]
    TooManyProjects(u64),
    #[error("You have started {0} builds in the last hour, the most allowed. Try again later.")]
    HourlyBuilds(u64),
    #[error("You already have a build waiting (number {place} in line, build {build}). It starts when a builder is free; cancel it to send a different one.")]
    AlreadyWaiting { place: usize, build: String },
    #[error("The build queue is full ({0} builds waiting). Try again in a few minutes.")]
    QueueFull(usize),
    #[error("There is no project called {0:?}.")]
    NoSuchProject(String),
    /// Someone else's project: what they may not do to it ("rebuild", "edit").
    #[error("Only the project's maintainer (or an admin) can {0} it.")]
    NotMaintainer(&'static str),
    #[error("A build of this project is already {state} ({build}). Wait for it or cancel it.")]
    BuildActive { state: BuildState, build: String },
    #[error("This project has no earlier build to repeat: send a Dockerfile or a script.")]
    NoRecipe,
    /// A request body that is not what the call takes (not an object, a value of the wrong type).
    #[error("The request body is not what this call expects: {0}")]
    BadJson(String),
    #[error("database: {0}")]
    Db(#[from] db::DbErr),
}

/// Paths a project slug must not take (they are, or may become, site routes).
const RESERVED: &[&str] = &[
    "admin",
    "api",
    "new",
    "search",
    "containers",
    "builds",
    "account",
    "login",
    "logout",
    "signup",
    "settings",
    "static",
    "pkg",
    "badge",
    "try",
    "healthz",
    "metrics",
    "trythis",
];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectForm {
    #[serde(default)]
    pub slug: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub homepage: Option<String>,
    pub repository: Option<String>,
    pub license: Option<String>,
    pub welcome: Option<String>,
    pub dockerfile: Option<String>,
    pub script: Option<String>,
    /// Import by reference: a public image (`host/repo:tag`, `host/repo@sha256:…`) copied into
    /// the platform's registry instead of a build.
    pub image: Option<String>,
    /// The smoke check: a command run in a sandbox of each new image before it goes live…
    pub check_command: Option<String>,
    /// …and text its output must contain (optional: without it, exit status 0 passes).
    pub check_expect: Option<String>,
}

/// The recipe of a build: a Dockerfile, or an install script and the Dockerfile made from it,
/// and its smoke check.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeForm {
    pub dockerfile: Option<String>,
    pub script: Option<String>,
    pub image: Option<String>,
    pub check_command: Option<String>,
    pub check_expect: Option<String>,
}

/// A recipe ready to build: `kind` "dockerfile", "script" or "image" (an import, whose `source`
/// is the reference as parsed and whose Dockerfile is empty).
pub struct Recipe {
    pub kind: &'static str,
    pub source: String,
    pub dockerfile: String,
    pub steps: usize,
    /// The images its stages start from, with the line of their `FROM` (none for a script,
    /// whose Dockerfile is generated).
    pub images: Vec<(Option<usize>, String)>,
    /// The images its `COPY --from=<image>` read, with their line: fetched like `FROM` images.
    pub copied: Vec<(Option<usize>, String)>,
    pub check: Option<SmokeCheck>,
}

/// A text field's value as stored (trimmed), or what is wrong with it.
fn text_field(
    field: &str,
    value: &str,
    label: &str,
    required: bool,
    max: usize,
    multiline: bool,
) -> Result<String, FieldProblem> {
    let v = value.trim();
    let problem = |message: String| Err(FieldProblem::new(field, message));
    if required && v.is_empty() {
        problem(format!("{label} is required."))
    } else if v.chars().count() > max {
        problem(format!("{label} is too long: at most {max} characters."))
    } else if v
        .chars()
        .any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')))
    {
        problem(format!("{label} contains control characters."))
    } else {
        Ok(v.to_string())
    }
}

/// An optional field: empty (or absent) is `None`.
fn optional(
    value: Option<&str>,
    check: impl FnOnce(&str) -> Result<String, FieldProblem>,
) -> Result<Option<String>, FieldProblem> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => check(v).map(Some),
        None => Ok(None),
    }
}

fn url_field(
    field: &str,
    value: Option<&str>,
    label: &str,
) -> Result<Option<String>, FieldProblem> {
    optional(value, |v| {
        let ok = (v.starts_with("https://") || v.starts_with("http://"))
            && v.len() <= 300
            && v.len() > "https://".len()
            && !v
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '<' || c == '>');
        if ok {
            Ok(v.to_string())
        } else {
            Err(FieldProblem::new(
                field,
                format!("{label} must be an http(s) address of at most 300 characters."),
            ))
        }
    })
}

// One check per metadata field, each giving the value as stored or the field's problem:
// publishing (`check_form`) and a maintainer's later edit (`builds::edit`) both use them, so a
// field is refused with the same answer either way.

pub fn check_slug(slug: &str) -> Result<String, FieldProblem> {
    let slug = slug.trim();
    match slug_problem(slug) {
        Some(p) => Err(FieldProblem::new("slug", p)),
        None => Ok(slug.to_string()),
    }
}

pub fn check_name(name: &str) -> Result<String, FieldProblem> {
    text_field("name", name, "The name", true, 60, false)
}

pub fn check_summary(summary: &str) -> Result<String, FieldProblem> {
    text_field("summary", summary, "The summary", true, 160, false)
}

pub fn check_description(description: &str) -> Result<String, FieldProblem> {
    text_field(
        "description",
        description,
        "The description",
        false,
        20_000,
        true,
    )
}

pub fn check_category(category: &str) -> Result<String, FieldProblem> {
    if CATEGORIES.contains(&category) {
        Ok(category.to_string())
    } else {
        Err(FieldProblem::new(
            "category",
            format!("Choose one of the categories: {}.", CATEGORIES.join(", ")),
        ))
    }
}

/// Tags folded (lower case, no accents), empty ones dropped, duplicates once.
pub fn check_tags(tags: &[String]) -> Result<Vec<String>, Vec<FieldProblem>> {
    let mut out = Vec::new();
    let mut kept: Vec<String> = Vec::new();
    if tags.len() > 8 {
        out.push(FieldProblem::new("tags", "At most 8 tags."));
    }
    for t in tags.iter().take(8) {
        let t = fold(t.trim());
        if t.is_empty() {
            continue;
        }
        if t.len() > 24
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.'))
        {
            out.push(FieldProblem::new(
                "tags",
                format!("Tag '{t}': at most 24 letters, digits, '-', '+' or '.'."),
            ));
        } else if !kept.contains(&t) {
            kept.push(t);
        }
    }
    if out.is_empty() {
        Ok(kept)
    } else {
        Err(out)
    }
}

pub fn check_homepage(homepage: Option<&str>) -> Result<Option<String>, FieldProblem> {
    url_field("homepage", homepage, "The homepage")
}

pub fn check_repository(repository: Option<&str>) -> Result<Option<String>, FieldProblem> {
    url_field("repository", repository, "The repository")
}

pub fn check_license(license: Option<&str>) -> Result<Option<String>, FieldProblem> {
    optional(license, |v| {
        text_field("license", v, "The license", false, 40, false)
    })
}

/// The text printed in the terminal before a Try's first prompt.
pub fn check_welcome(welcome: Option<&str>) -> Result<Option<String>, FieldProblem> {
    optional(welcome, |v| {
        text_field("welcome", v, "The welcome text", false, 300, true)
    })
}

/// Gathers every field's problems while keeping the values that passed.
#[derive(Default)]
pub(crate) struct Problems(pub Vec<FieldProblem>);

impl Problems {
    pub fn one<T>(&mut self, checked: Result<T, FieldProblem>) -> Option<T> {
        checked.map_err(|p| self.0.push(p)).ok()
    }

    pub fn many<T>(&mut self, checked: Result<T, Vec<FieldProblem>>) -> Option<T> {
        checked.map_err(|ps| self.0.extend(ps)).ok()
    }
}

/// Checks a slug: 2–40 of a–z, 0–9 and '-', starting and ending with a letter or digit.
pub fn slug_problem(slug: &str) -> Option<String> {
    let ok_chars = slug
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if slug.len() < 2 || slug.len() > 40 || !ok_chars {
        return Some(
            "The slug must be 2–40 characters: lower-case letters, digits and '-'.".into(),
        );
    }
    if slug.starts_with('-') || slug.ends_with('-') || slug.contains("--") {
        return Some("The slug must start and end with a letter or digit, without '--'.".into());
    }
    if RESERVED.contains(&slug) {
        return Some(format!("'{slug}' is reserved; choose another slug."));
    }
    None
}

/// Validates a smoke check: a command (one line or several) and, only with it, expected text.
pub fn check_smoke(
    command: Option<&str>,
    expect: Option<&str>,
) -> Result<Option<SmokeCheck>, Vec<FieldProblem>> {
    let command = command.map(str::trim).filter(|c| !c.is_empty());
    let expect = expect.map(str::trim).filter(|e| !e.is_empty());
    let mut out = Vec::new();
    let fields = [
        text_field(
            "check_command",
            command.unwrap_or(""),
            "The check command",
            false,
            MAX_CHECK_COMMAND,
            true,
        ),
        text_field(
            "check_expect",
            expect.unwrap_or(""),
            "The expected output",
            false,
            MAX_CHECK_EXPECT,
            false,
        ),
    ];
    out.extend(fields.into_iter().filter_map(Result::err));
    if command.is_none() && expect.is_some() {
        out.push(FieldProblem::new(
            "check_command",
            "Give the command whose output should contain this text.",
        ));
    }
    if !out.is_empty() {
        return Err(out);
    }
    Ok(command.map(|command| SmokeCheck {
        command: command.to_string(),
        expect: expect.map(String::from),
    }))
}

/// Validates a recipe (exactly one of Dockerfile / script, and its smoke check) into something
/// buildable; all problems at once.
pub fn check_recipe(form: &RecipeForm, base_image: &str) -> Result<Recipe, Vec<FieldProblem>> {
    let check = check_smoke(form.check_command.as_deref(), form.check_expect.as_deref());
    match (check_recipe_text(form, base_image), check) {
        (Ok(recipe), Ok(check)) => Ok(Recipe { check, ..recipe }),
        (recipe, check) => Err(recipe
            .err()
            .into_iter()
            .flatten()
            .chain(check.err().into_iter().flatten())
            .collect()),
    }
}

fn check_recipe_text(form: &RecipeForm, base_image: &str) -> Result<Recipe, Vec<FieldProblem>> {
    let dockerfile = form.dockerfile.as_deref().filter(|s| !s.trim().is_empty());
    let script = form.script.as_deref().filter(|s| !s.trim().is_empty());
    let image = form.image.as_deref().filter(|s| !s.trim().is_empty());
    let lines = |field: &str, ps: Vec<recipe::Problem>| -> Vec<FieldProblem> {
        ps.into_iter()
            .map(|p| FieldProblem {
                field: field.into(),
                line: p.line,
                message: p.message,
            })
            .collect()
    };
    if let Some(image) = image {
        if dockerfile.is_some() || script.is_some() {
            return Err(vec![FieldProblem::new(
                "image",
                "Give an image reference, a Dockerfile or an install script: only one of them.",
            )]);
        }
        // The grammar only: which registries may be read is `check_import`'s (configuration).
        let source = registry::ImageSource::parse(image).map_err(|e| {
            let m = match e {
                registry::RegistryError::InvalidReference(m) => m,
                other => other.to_string(),
            };
            vec![FieldProblem::new(
                "image",
                format!("This is not an image reference ({m}). Write it like ghcr.io/owner/app:1.0 or ghcr.io/owner/app@sha256:…"),
            )]
        })?;
        return Ok(image_recipe(source.to_string()));
    }
    match (dockerfile, script) {
        (Some(_), Some(_)) => Err(vec![FieldProblem::new(
            "dockerfile",
            "Give a Dockerfile or an install script, not both. (A converted script is sent as its Dockerfile.)",
        )]),
        (None, None) => Err(vec![FieldProblem::new(
            "dockerfile",
            "Give a Dockerfile (upload or paste), paste an install script, or name an image to import.",
        )]),
        (Some(d), None) => {
            let v = recipe::validate_dockerfile(d).map_err(|ps| lines("dockerfile", ps))?;
            Ok(Recipe {
                kind: "dockerfile",
                source: d.to_string(),
                dockerfile: v.dockerfile,
                steps: v.steps,
                images: v.images.into_iter().map(|(l, i)| (Some(l), i)).collect(),
                copied: v
                    .copied_images
                    .into_iter()
                    .map(|(l, i)| (Some(l), i))
                    .collect(),
                check: None,
            })
        }
        (None, Some(s)) => {
            let c = recipe::convert_script(s, base_image).map_err(|ps| lines("script", ps))?;
            let v = recipe::validate_dockerfile(&c.dockerfile).map_err(|ps| lines("script", ps))?;
            Ok(Recipe {
                kind: "script",
                source: s.to_string(),
                dockerfile: v.dockerfile,
                steps: v.steps,
                images: v.images.into_iter().map(|(_, i)| (None, i)).collect(),
                copied: Vec::new(),
                check: None,
            })
        }
    }
}

/// An import's recipe: the reference (as parsed) is the whole of it.
fn image_recipe(reference: String) -> Recipe {
    Recipe {
        kind: "image",
        source: reference,
        dockerfile: String::new(),
        steps: 0,
        images: Vec::new(),
        copied: Vec::new(),
        check: None,
    }
}

/// An import's reference must pass the platform's import policy (`builds::import`): a listed
/// registry, no private address written as the host. Other recipes pass.
fn check_import(builds: &BuildService, recipe: &Recipe) -> Result<(), PublishError> {
    if recipe.kind != "image" {
        return Ok(());
    }
    let limits = builds.limits();
    crate::builds::import::check_reference(
        &recipe.source,
        &limits.import_registries,
        &builds.registry_address(),
        builds.registry_namespace(),
    )
    .map(|_| ())
    .map_err(|m| PublishError::Invalid(vec![FieldProblem::new("image", m)]))
}

/// Validates every field of a new project; all problems at once.
pub fn check_form(
    form: &ProjectForm,
    base_image: &str,
) -> Result<(db::projects::NewProject, Recipe), Vec<FieldProblem>> {
    let mut p = Problems::default();
    let slug = p.one(check_slug(&form.slug));
    let name = p.one(check_name(&form.name));
    let summary = p.one(check_summary(&form.summary));
    let description = p.one(check_description(&form.description));
    let category = p.one(check_category(&form.category));
    let tags = p.many(check_tags(&form.tags));
    let homepage = p.one(check_homepage(form.homepage.as_deref()));
    let repository = p.one(check_repository(form.repository.as_deref()));
    let license = p.one(check_license(form.license.as_deref()));
    let welcome = p.one(check_welcome(form.welcome.as_deref()));
    let recipe = p.many(check_recipe(
        &RecipeForm {
            dockerfile: form.dockerfile.clone(),
            script: form.script.clone(),
            image: form.image.clone(),
            check_command: form.check_command.clone(),
            check_expect: form.check_expect.clone(),
        },
        base_image,
    ));
    // Every check passed exactly when no problem was gathered: each value is then there.
    match recipe {
        Some(recipe) if p.0.is_empty() => Ok((
            db::projects::NewProject {
                slug: slug.unwrap_or_default(),
                name: name.unwrap_or_default(),
                summary: summary.unwrap_or_default(),
                description: description.unwrap_or_default(),
                category: category.unwrap_or_default(),
                tags: tags.unwrap_or_default(),
                homepage: homepage.flatten(),
                repository: repository.flatten(),
                license: license.flatten(),
                welcome: welcome.flatten(),
                egress: false,
                maintainer: None,
                unlisted: false,
            },
            recipe,
        )),
        _ => Err(p.0),
    }
}

/// Every image the recipe reads (`FROM`, `COPY --from=`) must pass the image policy: the build
/// never pulls from Docker Hub (minutes later, or not at all on a closed network) nor from any
/// other host, and reads another project's image only as it is served now.
async fn check_images(builds: &BuildService, recipe: &Recipe) -> Result<(), PublishError> {
    let mut problems = Vec::new();
    for (line, what, image) in images_read(recipe) {
        if let Some(why) = image_refusal(builds, &image).await? {
            problems.push(FieldProblem {
                field: recipe.kind.into(),
                line,
                message: format!("{what}{image}: {why}"),
            });
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(PublishError::Invalid(problems))
    }
}

/// `(line, instruction, image)` for every image a recipe reads.
fn images_read(recipe: &Recipe) -> Vec<(Option<usize>, &'static str, String)> {
    let from = recipe.images.iter().map(|(l, i)| (*l, "FROM ", i.clone()));
    let copied = recipe
        .copied
        .iter()
        .map(|(l, i)| (*l, "COPY --from=", i.clone()));
    from.chain(copied).collect()
}

/// Why a build may not read `image` (None: it may). One policy for `FROM` and `COPY --from`, on
/// submit, on rebuild and again when the build starts: an image the build engine has (the
/// platform's base images), an image of the platform's registry outside the projects' namespace
/// (the platform's own), or a project's image as that live project serves it now (`repo@digest`:
/// not a tag, not an older build, which were never published or are no longer).
pub(crate) async fn image_refusal(
    builds: &BuildService,
    image: &str,
) -> Result<Option<String>, PublishError> {
    let registry = builds.registry_address();
    // The engine resolves a bare hex word or `sha256:…` as an image id (or its prefix): any image
    // it holds, another build's included, whatever its repository.
    let name = image.split(['@', ':']).next().unwrap_or(image);
    if image.starts_with("sha256:") || name.chars().all(|c| c.is_ascii_hexdigit()) {
        return Ok(Some(
            "an image id names whatever image the build engine holds; name the image by its repository".into(),
        ));
    }
    let projects = format!("{registry}/{}/", builds.registry_namespace());
    if image.starts_with(&projects) {
        let serving = match image.split_once('@') {
            Some((repo, digest)) if !repo[projects.len()..].contains(':') => {
                db::projects::serving(builds.db(), repo, digest)
                    .await?
                    .is_some()
            }
            _ => false,
        };
        if !serving {
            return Ok(Some(format!(
                "images of projects in the platform's registry ({registry}) are read only as a live project serves them now, written repo@digest (its current image); this names a tag, an older build or a project that is not live"
            )));
        }
    }
    let available = builds.image_available(image).await.map_err(|e| {
        tracing::warn!(error = %e, "the build engine did not answer an image check");
        PublishError::BuildEngineDown(e)
    })?;
    Ok((!available).then(|| format!(
        "this image is neither in the build engine nor in the platform's registry ({registry}), and builds never pull from Docker Hub or any other host; start from {} or a live project's image in {registry}",
        builds.limits().base_image
    )))
}

/// The images a stored build's Dockerfile reads (`FROM`, `COPY --from=`), with their lines; the
/// problems if it no longer passes the recipe checks (they only get stricter).
pub(crate) type ImagesRead = (Vec<(Option<usize>, String)>, Vec<(Option<usize>, String)>);
pub(crate) fn images_of(dockerfile: &str) -> Result<ImagesRead, Vec<recipe::Problem>> {
    let v = recipe::validate_dockerfile(dockerfile)?;
    let lined = |v: Vec<(usize, String)>| v.into_iter().map(|(l, i)| (Some(l), i)).collect();
    Ok((lined(v.images), lined(v.copied_images)))
}

/// Refuses a stored build's images that the policy no longer allows, at build start: a queued
/// build whose image stopped being served fails instead of reading it.
pub(crate) async fn recheck_images(builds: &BuildService, dockerfile: &str) -> Result<(), String> {
    let (images, copied) = images_of(dockerfile).map_err(|ps| {
        let first = ps.first().map_or(String::new(), |p| p.message.clone());
        format!("The recipe no longer passes the checks: {first}")
    })?;
    let recipe = Recipe {
        kind: "dockerfile",
        source: String::new(),
        dockerfile: String::new(),
        steps: 0,
        images,
        copied,
        check: None,
    };
    match check_images(builds, &recipe).await {
        Ok(()) => Ok(()),
        Err(PublishError::Invalid(ps)) => Err(ps
            .into_iter()
            .map(|p| match p.line {
                Some(line) => format!("line {line}: {}", p.message),
                None => p.message,
            })
            .collect::<Vec<_>>()
            .join("; ")),
        Err(e) => Err(e.to_string()),
    }
}

/// Publishes a new project: checks, quota, then project (status `building`) and a queued build in
/// one transaction. Returns the build id. `listed`: whether it shows in the catalogue at once
/// (see `listed_at_once`) or waits, unlisted, for an admin's review.
pub async fn submit(
    builds: &BuildService,
    db: &db::DatabaseConnection,
    owner: &OwnerKey,
    form: &ProjectForm,
    listed: bool,
) -> Result<String, PublishError> {
    let limits = builds.limits().clone();
    let (mut project, recipe) =
        check_form(form, &limits.base_image).map_err(PublishError::Invalid)?;
    check_import(builds, &recipe)?;
    check_images(builds, &recipe).await?;
    if db::projects::by_slug(db, &project.slug).await?.is_some() {
        return Err(PublishError::SlugTaken(project.slug));
    }
    if db::projects::count_maintained(db, owner).await? >= limits.projects_per_owner {
        return Err(PublishError::TooManyProjects(limits.projects_per_owner));
    }
    check_build_quota(db, owner, &limits).await?;
    project.maintainer = Some(owner.clone());
    project.unlisted = !listed;
    let id = crate::secrets::random_id();
    let txn = db.begin().await?;
    // Created, never updated: a concurrent submission of the same slug that committed first
    // makes this one a 409, instead of landing this recipe on the other's project.
    let Some(saved) = db::projects::create(&txn, &project).await? else {
        return Err(PublishError::SlugTaken(project.slug));
    };
    db::builds::insert_queued(&txn, new_build(&id, &saved, owner, recipe)).await?;
    txn.commit().await?;
    builds.enqueue(&id);
    Ok(id)
}

/// Whether a new project of `owner` is listed at once: always without moderation; under it, for
/// admins and for maintainers an admin approved before.
pub async fn listed_at_once(
    db: &db::DatabaseConnection,
    moderation: bool,
    owner: &OwnerKey,
    is_admin: bool,
) -> Result<bool, db::DbErr> {
    if !moderation || is_admin {
        return Ok(true);
    }
    Ok(match owner.user_id() {
        Some(id) => db::accounts::by_id(db, id)
            .await?
            .is_some_and(|u| u.approved_publisher),
        None => false,
    })
}

fn new_build(
    id: &str,
    p: &db::projects::Model,
    owner: &OwnerKey,
    r: Recipe,
) -> db::builds::NewBuild {
    db::builds::NewBuild {
        id: id.to_string(),
        project_id: p.id,
        project_slug: p.slug.clone(),
        owner: owner.clone(),
        source_kind: r.kind.into(),
        source: r.source,
        dockerfile: r.dockerfile,
        steps: r.steps as i32,
        check_command: r.check.as_ref().map(|c| c.command.clone()),
        check_expect: r.check.and_then(|c| c.expect),
    }
}

/// Fair use of the builders: builds per hour, at most one waiting build per account (one more may
/// be running), and a bounded queue for everyone together.
async fn check_build_quota(
    db: &db::DatabaseConnection,
    owner: &OwnerKey,
    limits: &crate::config::BuildLimits,
) -> Result<(), PublishError> {
    let per_hour = limits.per_hour;
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    if db::builds::count_since(db, owner, since).await? >= per_hour {
        return Err(PublishError::HourlyBuilds(per_hour));
    }
    let waiting = db::builds::queued(db).await?;
    if let Some(place) = waiting.iter().position(|b| b.owner == *owner) {
        return Err(PublishError::AlreadyWaiting {
            place: place + 1,
            build: waiting[place].id.clone(),
        });
    }
    if waiting.len() as u64 >= limits.queue_max {
        return Err(PublishError::QueueFull(waiting.len()));
    }
    Ok(())
}

/// A new build of an existing project (its maintainer's CI, or the Rebuild button): the given
/// recipe, or the last build's when none is given.
pub async fn rebuild(
    builds: &BuildService,
    db: &db::DatabaseConnection,
    owner: &OwnerKey,
    is_admin: bool,
    slug: &str,
    form: &RecipeForm,
) -> Result<String, PublishError> {
    let project = db::projects::by_slug(db, slug)
        .await?
        .ok_or_else(|| PublishError::NoSuchProject(slug.to_string()))?;
    if !is_admin && project.maintainer.as_ref() != Some(owner) {
        return Err(PublishError::NotMaintainer("rebuild"));
    }
    if let Some(active) = db::builds::active_for_project(db, project.id).await? {
        return Err(PublishError::BuildActive {
            state: active.state,
            build: active.id,
        });
    }
    let recipe = if form.dockerfile.is_none() && form.script.is_none() && form.image.is_none() {
        let last = db::builds::for_project(db, project.id, 1)
            .await?
            .into_iter()
            .next()
            .ok_or(PublishError::NoRecipe)?;
        // The last build's check, unless this request declares one.
        let declared = form.check_command.is_some() || form.check_expect.is_some();
        let check = if declared {
            check_smoke(form.check_command.as_deref(), form.check_expect.as_deref())
                .map_err(PublishError::Invalid)?
        } else {
            last.check_command.clone().map(|command| SmokeCheck {
                command,
                expect: last.check_expect.clone(),
            })
        };
        if last.source_kind == "image" {
            // The same reference again (a tag may have moved on); the policy is checked again.
            Recipe {
                check,
                ..image_recipe(last.source)
            }
        } else {
            let (images, copied) = images_of(&last.dockerfile).map_err(|ps| {
                PublishError::Invalid(
                    ps.into_iter()
                        .map(|p| FieldProblem {
                            field: "dockerfile".into(),
                            line: p.line,
                            message: p.message,
                        })
                        .collect(),
                )
            })?;
            Recipe {
                check,
                kind: if last.source_kind == "script" {
                    "script"
                } else {
                    "dockerfile"
                },
                steps: recipe::validate_dockerfile(&last.dockerfile)
                    .map(|v| v.steps)
                    .unwrap_or(last.steps as usize),
                // Checked again: an image it read may no longer be served.
                images,
                copied,
                source: last.source,
                dockerfile: last.dockerfile,
            }
        }
    } else {
        check_recipe(form, &builds.limits().base_image).map_err(PublishError::Invalid)?
    };
    check_import(builds, &recipe)?;
    check_images(builds, &recipe).await?;
    check_build_quota(db, owner, builds.limits()).await?;
    let id = crate::secrets::random_id();
    db::builds::insert_queued(db, new_build(&id, &project, owner, recipe)).await?;
    builds.enqueue(&id);
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> ProjectForm {
        ProjectForm {
            slug: "hello-tool".into(),
            name: "Hello Tool".into(),
            summary: "Says hello.".into(),
            category: "CLI tools".into(),
            tags: vec!["Greeting".into(), "greeting".into()],
            script: Some("apt-get install -y hello\n".into()),
            ..Default::default()
        }
    }

    fn fields(r: Result<(db::projects::NewProject, Recipe), Vec<FieldProblem>>) -> Vec<String> {
        match r {
            Ok(_) => vec![],
            Err(ps) => ps.into_iter().map(|p| p.field).collect(),
        }
    }

    #[test]
    fn a_good_form_passes_and_tags_are_folded_and_deduplicated() {
        let (p, r) = match check_form(&form(), "trythis/base:bookworm") {
            Ok(x) => x,
            Err(e) => panic!("{e:?}"),
        };
        assert_eq!(p.tags, vec!["greeting".to_string()]);
        assert_eq!(r.kind, "script");
        assert!(r.dockerfile.contains("FROM trythis/base:bookworm"));
    }

    #[test]
    fn every_bad_field_is_named() {
        let bad = ProjectForm {
            slug: "Bad Slug".into(),
            name: "x".repeat(61),
            summary: String::new(),
            category: "Nope".into(),
            tags: vec!["ok".into(), "not ok!".into()],
            homepage: Some("javascript:alert(1)".into()),
            repository: Some("https://exa mple.com".into()),
            license: Some("l".repeat(41)),
            welcome: Some("bell\u{7}".into()),
            dockerfile: Some("FROM x\n".into()),
            script: Some("echo hi\n".into()),
            ..Default::default()
        };
        let f = fields(check_form(&bad, "base"));
        for want in [
            "slug",
            "name",
            "summary",
            "category",
            "tags",
            "homepage",
            "repository",
            "license",
            "welcome",
            "dockerfile",
        ] {
            assert!(f.contains(&want.to_string()), "{want} missing from {f:?}");
        }
    }

    #[test]
    fn slugs() {
        assert_eq!(slug_problem("redis"), None);
        assert_eq!(slug_problem("a1-b2"), None);
        for bad in [
            "a",
            "-a",
            "a-",
            "a--b",
            "A",
            "é",
            "admin",
            "api",
            &"x".repeat(41),
        ] {
            assert!(slug_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn dockerfile_problems_keep_their_line() {
        let r = check_recipe(
            &RecipeForm {
                dockerfile: Some("FROM trythis/base:bookworm\nCOPY app /app\n".into()),
                ..Default::default()
            },
            "base",
        );
        let ps = match r {
            Ok(_) => panic!("COPY of a local file must be refused"),
            Err(ps) => ps,
        };
        assert_eq!(ps[0].field, "dockerfile");
        assert_eq!(ps[0].line, Some(2));
    }

    #[test]
    fn an_image_reference_is_a_recipe_of_its_own() {
        let image = |r: &str| RecipeForm {
            image: Some(r.into()),
            ..Default::default()
        };
        let r =
            check_recipe(&image("ghcr.io/owner/app:1.0"), "b").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            (r.kind, r.source.as_str()),
            ("image", "ghcr.io/owner/app:1.0")
        );
        assert!(r.dockerfile.is_empty() && r.images.is_empty());
        // Docker Hub's short names are stored as what they stand for.
        let hub = check_recipe(&image("nginx"), "b").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(hub.source, "docker.io/library/nginx:latest");
        for bad in [
            "https://ghcr.io/x",
            "ghcr.io/Owner/App",
            "ghcr.io/x@sha256:12",
        ] {
            let ps = match check_recipe(&image(bad), "b") {
                Ok(_) => panic!("{bad} accepted"),
                Err(ps) => ps,
            };
            assert_eq!(ps[0].field, "image", "{bad}");
            assert!(
                ps[0].message.starts_with("This is not an image reference"),
                "{ps:?}"
            );
        }
        let both = RecipeForm {
            image: Some("ghcr.io/x:1".into()),
            script: Some("ls\n".into()),
            ..Default::default()
        };
        assert!(check_recipe(&both, "b").is_err());
    }

    #[test]
    fn neither_or_both_recipes_are_refused() {
        assert!(check_recipe(&RecipeForm::default(), "b").is_err());
        assert!(check_recipe(
            &RecipeForm {
                dockerfile: Some("FROM a\n".into()),
                script: Some("ls\n".into()),
                ..Default::default()
            },
            "b"
        )
        .is_err());
    }
}
