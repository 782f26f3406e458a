//! Phones: the on-screen keyboard covers the lower part of the screen without resizing the page,
//! so a terminal laid out for the whole screen would have its prompt and keys bar under the
//! keyboard. While the terminal has the focus and the visible part of the screen (the visual
//! viewport) is clearly shorter than it was, the Try panel is fixed over exactly that part, under
//! the sticky top bar (`.try-panel.keyboard`); the terminal fits itself to it (a window `resize`).
use std::cell::Cell;
use std::rc::Rc;
use wasm_bindgen::{closure::Closure, JsCast};

/// Shorter than this (CSS px) below the tallest visible height seen: a keyboard is open.
const KEYBOARD_MIN: f64 = 120.0;

pub fn follow_keyboard() {
    let Some(w) = web_sys::window() else { return };
    let Some(vv) = w.visual_viewport() else {
        return;
    };
    // The tallest visible height at the current width (a rotation starts over).
    let tallest = Rc::new(Cell::new(vv.height()));
    let width = Rc::new(Cell::new(vv.width()));
    let last = Rc::new(Cell::new((false, 0.0, 0.0)));
    let update = {
        let (w, vv) = (w.clone(), vv.clone());
        move || {
            if vv.width() != width.get() {
                width.set(vv.width());
                tallest.set(vv.height());
            }
            tallest.set(tallest.get().max(vv.height()));
            let Some(doc) = w.document() else { return };
            let Some(panel) = doc
                .query_selector(".try-panel.running")
                .ok()
                .flatten()
                .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok())
            else {
                return;
            };
            let coarse = w
                .match_media("(pointer: coarse)")
                .ok()
                .flatten()
                .is_some_and(|m| m.matches());
            let focused = doc
                .active_element()
                .is_some_and(|a| panel.contains(Some(a.as_ref())));
            let open = coarse && focused && vv.height() < tallest.get() - KEYBOARD_MIN;
            // The panel starts under the part of the top bar that is in view.
            let bar = doc
                .query_selector(".topbar")
                .ok()
                .flatten()
                .map(|b| b.get_bounding_client_rect().bottom())
                .unwrap_or(0.0);
            let top = vv.offset_top().max(bar);
            let height = (vv.offset_top() + vv.height() - top).max(0.0);
            let state = if open {
                (true, top.round(), height.round())
            } else {
                (false, 0.0, 0.0)
            };
            if state == last.get() {
                return;
            }
            last.set(state);
            let _ = panel.class_list().toggle_with_force("keyboard", open);
            let style = panel.style();
            if open {
                let _ = style.set_property("top", &format!("{}px", state.1));
                let _ = style.set_property("height", &format!("{}px", state.2));
            } else {
                let _ = style.remove_property("top");
                let _ = style.remove_property("height");
            }
            // terminal.js fits the terminal to its box on a window resize.
            if let Ok(ev) = web_sys::Event::new("resize") {
                let _ = w.dispatch_event(&ev);
            }
        }
    };
    let update: Closure<dyn Fn()> = Closure::new(update);
    let f = update.as_ref().unchecked_ref();
    let _ = vv.add_event_listener_with_callback("resize", f);
    let _ = vv.add_event_listener_with_callback("scroll", f);
    if let Some(doc) = w.document() {
        let _ = doc.add_event_listener_with_callback("focusin", f);
        let _ = doc.add_event_listener_with_callback("focusout", f);
    }
    // Listens for the page's whole life.
    update.forget();
}
