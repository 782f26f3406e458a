//! `COPY --from=<image>` makes the engine fetch an image, as `FROM` does: the image is handed to
//! the platform's image policy with its line, and what cannot be checked is refused here.

use recipe::{validate_dockerfile, Problem};

fn problems(text: &str) -> Vec<Problem> {
    match validate_dockerfile(text) {
        Ok(ok) => panic!("accepted:\n{text}\n{ok:#?}"),
        Err(problems) => problems,
    }
}

fn at(line: usize, message: &str) -> Problem {
    Problem {
        line: Some(line),
        message: message.to_string(),
    }
}

#[test]
fn an_image_in_copy_from_is_handed_to_the_image_policy_with_its_line() {
    // The attack of issue 25: the build engine fetched this from a loopback port of the host.
    let v = validate_dockerfile(
        "FROM trythis/base:bookworm\nCOPY --from=127.0.0.1:4444/x/y:v1 /etc/passwd /p\n",
    )
    .expect("valid syntax; the platform decides about the image");
    assert_eq!(
        v.copied_images,
        vec![(2, "127.0.0.1:4444/x/y:v1".to_string())]
    );
    assert_eq!(
        v.images,
        vec![(1, "trythis/base:bookworm".to_string())],
        "FROM images are listed apart"
    );
}

#[test]
fn stages_by_name_or_number_are_not_images() {
    let v = validate_dockerfile(
        "FROM debian:bookworm AS build\nRUN echo hi > /x\nFROM debian:bookworm\nCOPY --from=build /x /x\nCOPY --from=0 /x /y\nCOPY --from=BUILD /x /z\n",
    )
    .expect("valid");
    assert_eq!(v.copied_images, vec![]);
}

#[test]
fn a_variable_in_copy_from_is_refused() {
    for from in ["$IMG", "${IMG}", "127.0.0.1:4444/$X"] {
        let text = format!("ARG IMG=debian\nFROM debian:bookworm\nCOPY --from={from} /a /b\n");
        assert_eq!(
            problems(&text),
            vec![at(3, &format!("COPY --from={from}: a variable in --from cannot be checked before the build; name an earlier stage or write the image out"))],
            "{text}"
        );
    }
}

#[test]
fn an_invalid_image_in_copy_from_is_refused() {
    assert_eq!(
        problems("FROM debian:bookworm\nCOPY --from=Evil.example/X /a /b\n"),
        vec![at(
            2,
            "COPY --from=Evil.example/X: not a valid image reference"
        )]
    );
}

#[test]
fn onbuild_copy_from_is_refused() {
    let found = problems("FROM debian:bookworm\nONBUILD COPY --from=127.0.0.1:4444/x/y:v1 /a /b\n");
    assert_eq!(
        found,
        vec![at(2, "ONBUILD COPY --from is not allowed: it would read an image in another project's build, where this Dockerfile is not checked; copy from a stage of the Dockerfile that builds FROM this image instead")]
    );
}
