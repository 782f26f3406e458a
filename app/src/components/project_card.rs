use crate::model::ProjectCard;
use leptos::prelude::*;

/// A project as a card: name, category, summary, tags, tries.
#[component]
pub fn ProjectCardView(card: ProjectCard) -> impl IntoView {
    let href = format!("/p/{}", card.slug);
    let tries = match card.tries {
        // "0 tries" reads as "nobody wants this"; it is only new.
        0 => "new · be the first".to_string(),
        1 => "1 try".to_string(),
        n => format!("{n} tries"),
    };
    view! {
        <a class="card" href=href data-slug=card.slug.clone()>
            <div class="card-top">
                <span class="card-name">{card.name}</span>
                <span class="chip cat">{card.category}</span>
            </div>
            <p class="card-summary">{card.summary}</p>
            <div class="card-bottom">
                <span class="tags">
                    {card.tags.into_iter().take(4).map(|t| view! { <span class="tag">"#"{t}</span> }).collect_view()}
                </span>
                <span class="tries">{tries}</span>
            </div>
        </a>
    }
}

/// A grid of cards, or an empty-state message.
#[component]
pub fn CardGrid(cards: Vec<ProjectCard>, #[prop(into)] empty: String) -> impl IntoView {
    if cards.is_empty() {
        view! { <p class="empty">{empty}</p> }.into_any()
    } else {
        view! {
            <div class="grid">
                {cards.into_iter().map(|c| view! { <ProjectCardView card=c/> }).collect_view()}
            </div>
        }
        .into_any()
    }
}
