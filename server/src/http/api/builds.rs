//! Publishing API: submit a project, rebuild, watch a build's live log (SSE), cancel; and the
//! recipe helpers the publish form calls before submitting (convert a script, check a Dockerfile).
use crate::{
    builds::publish::{self, ProjectForm, RecipeForm},
    builds::BuildEvent,
    http::error::{ApiError, ApiResult},
    http::state::AppState,
};
use app::model::{
    BuildAccepted, BuildCancelling, BuildRecord, BuildStateChange, BuildStep, CheckRequest,
    Checked, ConvertRequest, Converted, FieldProblem, Identity, Items, RecipeNote, SmokeCheck,
};
use axum::{
    extract::{rejection::JsonRejection, Path, State},
    http::StatusCode,
    response::sse::{Event, KeepAlive, Sse},
    Extension, Json,
};
use futures::{stream, Stream, StreamExt};
use std::convert::Infallible;

use super::body;

fn accepted(slug: Option<String>, id: String) -> (StatusCode, Json<BuildAccepted>) {
    let build_url = format!("/builds/{id}");
    (
        StatusCode::ACCEPTED,
        Json(BuildAccepted {
            slug,
            build_id: id,
            build_url,
        }),
    )
}

/// `POST /api/projects` — 202 `{"slug","build_id","build_url"}`.
pub async fn create(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    form: Result<Json<ProjectForm>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<BuildAccepted>)> {
    if !me.signed_in {
        return Err(ApiError::Unauthorized(
            "Log in to publish a project: projects belong to an account.".into(),
        ));
    }
    let form = body(form)?;
    let listed =
        publish::listed_at_once(&st.db, st.config.moderation, &me.key, me.is_admin).await?;
    let id = publish::submit(&st.builds, &st.db, &me.key, &form, listed).await?;
    Ok(accepted(Some(form.slug.trim().to_string()), id))
}

/// `POST /api/projects/{slug}/builds` — 202 `{"build_id"}`; body optional (repeat last recipe).
pub async fn rebuild(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path(slug): Path<String>,
    form: Result<Json<RecipeForm>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<BuildAccepted>)> {
    let form = body(form)?;
    let id = publish::rebuild(&st.builds, &st.db, &me.key, me.is_admin, &slug, &form).await?;
    Ok(accepted(None, id))
}

fn record(b: &db::builds::Model) -> BuildRecord {
    BuildRecord {
        id: b.id.clone(),
        project: b.project_slug.clone(),
        state: b.state,
        step: b.step,
        steps: b.steps,
        error: b.error.clone(),
        source_kind: b.source_kind.clone(),
        dockerfile: (b.source_kind != "image").then(|| b.dockerfile.clone()),
        image_source: (b.source_kind == "image").then(|| b.source.clone()),
        image: b
            .image_repo
            .as_ref()
            .zip(b.image_digest.as_ref())
            .map(|(r, d)| format!("{r}@{d}")),
        image_tag: b.image_tag.clone(),
        image_size: b.image_size,
        created_at: b.created_at.to_rfc3339(),
        started_at: b.started_at.map(|t| t.to_rfc3339()),
        finished_at: b.finished_at.map(|t| t.to_rfc3339()),
        queue_position: None,
        typical_secs: None,
        check: SmokeCheck::of(b.check_command.as_deref(), b.check_expect.as_deref()),
        waited_secs: None,
        estimate_secs: None,
    }
}

/// A build `me` may see (`db::builds::visible_to`); one it may not is "no such build".
async fn find(st: &AppState, me: &Identity, id: &str) -> ApiResult<db::builds::Model> {
    let not_found = || ApiError::NotFound("There is no such build.".into());
    let b = db::builds::get(&st.db, id).await?.ok_or_else(not_found)?;
    let p = db::projects::by_id(&st.db, b.project_id).await?;
    if !db::builds::visible_to(&b, p.as_ref(), &me.key, me.is_admin) {
        return Err(not_found());
    }
    Ok(b)
}

/// `GET /api/builds/{id}`
pub async fn get(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path(id): Path<String>,
) -> ApiResult<Json<BuildRecord>> {
    let b = find(&st, &me, &id).await?;
    let queue_position = db::builds::queue_position(&st.db, &b).await?;
    let typical_secs = db::builds::typical_seconds(&st.db).await?;
    let queued = b.state == db::BuildState::Queued;
    Ok(Json(BuildRecord {
        queue_position,
        typical_secs,
        waited_secs: queued.then(|| (chrono::Utc::now() - b.created_at).num_seconds().max(0)),
        estimate_secs: app::model::start_estimate(
            queue_position,
            typical_secs,
            st.builds.limits().concurrency,
        ),
        ..record(&b)
    }))
}

/// `GET /api/projects/{slug}/builds` — newest first.
pub async fn list(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path(slug): Path<String>,
) -> ApiResult<Json<Items<BuildRecord>>> {
    let p = db::projects::by_slug(&st.db, &slug)
        .await?
        .filter(|p| p.status != db::ProjectStatus::Hidden || me.is_admin)
        .ok_or_else(|| ApiError::NotFound(format!("There is no project called {slug:?}.")))?;
    let items = db::builds::for_project(&st.db, p.id, 50)
        .await?
        .iter()
        .filter(|b| db::builds::visible_to(b, Some(&p), &me.key, me.is_admin))
        .map(|b| BuildRecord {
            dockerfile: None,
            ..record(b)
        })
        .collect();
    Ok(Json(Items { items }))
}

/// `DELETE /api/builds/{id}` — cancel (who started it, the maintainer, or an admin).
pub async fn cancel(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path(id): Path<String>,
) -> ApiResult<Json<BuildCancelling>> {
    let b = find(&st, &me, &id).await?;
    let maintainer = db::projects::by_id(&st.db, b.project_id)
        .await?
        .and_then(|p| p.maintainer);
    if !(me.is_admin || b.owner == me.key || maintainer.as_ref() == Some(&me.key)) {
        return Err(ApiError::Forbidden(
            "Only the project's maintainer can cancel its builds.".into(),
        ));
    }
    if b.state.is_finished() || !st.builds.cancel(&id).await? {
        return Err(ApiError::Conflict(
            "build_finished",
            format!("This build has already {}.", b.state),
        ));
    }
    Ok(Json(BuildCancelling {
        id,
        cancelling: true,
    }))
}

fn step_event(step: i32, steps: i32) -> Event {
    let data = serde_json::to_string(&BuildStep { step, steps }).unwrap_or_default();
    Event::default().event("step").data(data)
}

fn sse_event(ev: &BuildEvent) -> Event {
    match ev {
        BuildEvent::Log { line } => Event::default().event("log").data(line),
        BuildEvent::Step { step, steps } => step_event(*step, *steps),
        BuildEvent::State { state, error } => {
            let change = BuildStateChange {
                state: *state,
                error: error.clone(),
            };
            let data = serde_json::to_string(&change).unwrap_or_default();
            Event::default().event("state").data(data)
        }
    }
}

/// `GET /api/builds/{id}/log` — Server-Sent Events: the log so far, then live `log`, `step` and
/// `state` events until the build ends. A finished build replays its stored log and ends.
pub async fn log(
    State(st): State<AppState>,
    Extension(me): Extension<Identity>,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let b = find(&st, &me, &id).await?;
    let (Some(mine), Some(this_build)) = (
        st.streams.logs_per_identity.hold(&me.key.to_string()),
        st.streams.logs_per_build.hold(&id),
    ) else {
        return Err(super::terminal::too_many_open("build logs"));
    };
    let head = |b: &db::builds::Model, log: &str| -> Vec<Event> {
        let mut evs: Vec<Event> = log
            .lines()
            .map(|l| Event::default().event("log").data(l))
            .collect();
        evs.push(step_event(b.step, b.steps));
        evs
    };
    let live = if b.state.is_finished() {
        None
    } else {
        st.builds.watch(&id)
    };
    let stream: std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>> = match live
    {
        Some((so_far, rx)) => {
            let mut first = head(&b, &so_far);
            first.push(sse_event(&BuildEvent::State {
                state: b.state,
                error: None,
            }));
            let follow = stream::unfold(Some(rx), |rx| async move {
                let mut rx = rx?;
                match rx.recv().await {
                    Ok(ev) => {
                        let done =
                            matches!(&ev, BuildEvent::State { state, .. } if state.is_finished());
                        Some((sse_event(&ev), if done { None } else { Some(rx) }))
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => Some((
                        Event::default()
                            .event("log")
                            .data(format!("[… {n} lines skipped …]")),
                        Some(rx),
                    )),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
                }
            });
            stream::iter(first).chain(follow).map(Ok).boxed()
        }
        None => {
            let b = find(&st, &me, &id).await?;
            let mut evs = head(&b, &b.log);
            evs.push(sse_event(&BuildEvent::State {
                state: b.state,
                error: b.error.clone(),
            }));
            if b.state.is_finished() {
                // Finished (or finished between the two reads): the stored row is complete.
                stream::iter(evs).map(Ok).boxed()
            } else {
                // Queued, or running on another replica: its row, which the runner writes out
                // every second, is followed.
                stream::iter(evs)
                    .chain(follow_row(st.db.clone(), b))
                    .map(Ok)
                    .boxed()
            }
        }
    };
    // The slots are given back when the stream ends or the browser goes. A draining server
    // ends the stream; the browser's EventSource reconnects, through the load balancer.
    let closing = Box::pin(async move {
        this_build.closed().await;
        drop(this_build);
    });
    let stream = stream
        .map(move |e| {
            let _held = &mine;
            e
        })
        .take_until(closing);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// What changes in a build's row from `b` on, as events: new log lines, steps, states; ends
/// once the build is finished (or its row is gone).
fn follow_row(
    db: db::DatabaseConnection,
    b: db::builds::Model,
) -> impl Stream<Item = Event> + Send {
    stream::unfold(Some(b), move |seen| {
        let db = db.clone();
        async move {
            let seen = seen?;
            loop {
                tokio::time::sleep(crate::builds::LOG_FLUSH).await;
                let now = match db::builds::get(&db, &seen.id).await {
                    Ok(Some(now)) => now,
                    Ok(None) => return None,
                    Err(_) => continue,
                };
                let mut evs = Vec::new();
                let (skipped, lines) = crate::builds::log::new_lines(&seen.log, &now.log);
                if skipped {
                    evs.push(Event::default().event("log").data("[… lines skipped …]"));
                }
                evs.extend(lines.iter().map(|l| Event::default().event("log").data(*l)));
                if (now.step, now.steps) != (seen.step, seen.steps) {
                    evs.push(step_event(now.step, now.steps));
                }
                if now.state != seen.state {
                    evs.push(sse_event(&BuildEvent::State {
                        state: now.state,
                        error: now.error.clone(),
                    }));
                }
                let done = now.state.is_finished();
                if !evs.is_empty() || done {
                    return Some((stream::iter(evs), (!done).then_some(now)));
                }
            }
        }
    })
    .flatten()
}

fn notes(problems: Vec<recipe::Problem>) -> Vec<RecipeNote> {
    problems
        .into_iter()
        .map(|p| RecipeNote {
            line: p.line,
            message: p.message,
        })
        .collect()
}

fn problems_in(field: &str, problems: Vec<recipe::Problem>) -> ApiError {
    crate::http::error::invalid(
        problems
            .into_iter()
            .map(|p| FieldProblem {
                field: field.into(),
                line: p.line,
                message: p.message,
            })
            .collect(),
    )
}

/// `POST /api/recipe/convert` `{script}` — the Dockerfile a script becomes (shown, editable).
pub async fn convert(
    State(st): State<AppState>,
    form: Result<Json<ConvertRequest>, JsonRejection>,
) -> ApiResult<Json<Converted>> {
    let form = body(form)?;
    let c = recipe::convert_script(&form.script, &st.builds.limits().base_image)
        .map_err(|ps| problems_in("script", ps))?;
    let check = recipe::propose_check(&form.script).map(|p| SmokeCheck {
        command: p.command,
        expect: p.expect,
    });
    Ok(Json(Converted {
        dockerfile: c.dockerfile,
        base_image: c.base_image,
        notes: notes(c.notes),
        check,
    }))
}

/// `POST /api/recipe/check` `{dockerfile}` — problems with line numbers, or the step count.
pub async fn check(form: Result<Json<CheckRequest>, JsonRejection>) -> ApiResult<Json<Checked>> {
    let form = body(form)?;
    let ok = recipe::validate_dockerfile(&form.dockerfile)
        .map_err(|ps| problems_in("dockerfile", ps))?;
    Ok(Json(Checked {
        steps: ok.steps,
        base_image: ok.base_image,
        warnings: notes(ok.warnings),
    }))
}
