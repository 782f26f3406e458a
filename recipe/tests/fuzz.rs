//! Deterministic random inputs built from shell and Dockerfile fragments: nothing panics, and
//! whatever the converter emits passes validation and the parser (it never reports an
//! internal error).

mod common;

/// xorshift64*: small, deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const SHELL: &[&str] = &[
    "sudo ",
    "apt ",
    "apt-get ",
    "install ",
    "update ",
    "-y ",
    "cd ",
    "cd ~",
    "cd -",
    "export ",
    "A=1 ",
    "PATH=$PATH:/x ",
    "'",
    "\"",
    "\\",
    "\\\n",
    "&& ",
    "&&\n",
    "|| ",
    "| ",
    "; ",
    ";;",
    "&",
    "<<EOF",
    "<<'X'",
    "<<-EOF",
    "\nEOF\n",
    "\nX\n",
    "\n\tEOF\n",
    "\n",
    "\n",
    "\n",
    "$(",
    ")",
    "(",
    "`",
    "# c",
    "#",
    "$HOME",
    "~/",
    "source ",
    ". ",
    "v/bin/activate",
    "~/.cargo/env",
    "if ",
    "then ",
    "fi",
    "for x in a; ",
    "do ",
    "done",
    "{ ",
    "}",
    " ",
    "\t",
    "é",
    "[",
    "]",
    "$",
    "=",
    "*",
    "cat ",
    "> f ",
    ">> f",
    "python3 -m venv v",
    "pip install x ",
    "exit ",
    "docker ",
    "curl https://sh.rustup.rs | sh",
    "set -e",
    "$ ",
    "#!/bin/sh\n",
    "# trythis: base=alpine\n",
    "# trythis: workdir=/srv\n",
    "echo ",
    "x",
    "${A:-b}",
    "$((1<<2))",
    "case x in ",
    "a) ",
    "esac",
    "cargo install y",
    "go install z",
    "\r\n",
    "--x ",
    "sudo -u root ",
    "[ \"a\" ] ",
    "[\"a\", \"b\"]",
    "\\ ",
    "\\\t",
    "add-apt-repository ",
];

const DOCKERFILE: &[&str] = &[
    "FROM ",
    "debian",
    "scratch",
    " AS b",
    "RUN ",
    "COPY ",
    "--from=b ",
    "ADD ",
    "https://x/y ",
    "/a ",
    "/b",
    "CMD ",
    "[\"a\"",
    ", \"b\"]",
    "['x']",
    "ENV ",
    "A=1",
    "ARG ",
    "V=1",
    "$V",
    "${V}",
    "\\\n",
    "\n",
    "\n",
    "# syntax=x\n",
    "# escape=`\n",
    "`\n",
    "<<EOF",
    "\nEOF\n",
    "--mount=x ",
    "HEALTHCHECK ",
    "NONE",
    "VOLUME ",
    "ONBUILD ",
    "WORKDIR",
    " ",
    "#",
    "FORM ",
    "\"",
    "'",
    "é",
    "[ ",
    "]",
    "\t",
    "USER ",
    "SHELL ",
];

fn generate(rng: &mut Rng, alphabet: &[&str]) -> String {
    let len = 1 + rng.next() % 40;
    (0..len).map(|_| rng.pick(alphabet)).collect()
}

#[test]
fn random_scripts_never_produce_invalid_dockerfiles() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut converted = 0;
    for _ in 0..4000 {
        let script = generate(&mut rng, SHELL);
        match recipe::convert_script(&script, common::BASE) {
            Ok(out) => {
                converted += 1;
                common::assert_valid(&out.dockerfile);
            }
            Err(problems) => {
                assert!(!problems.is_empty());
                for problem in &problems {
                    assert!(
                        !problem.message.starts_with("internal error"),
                        "{script:?}\n{problem}"
                    );
                }
            }
        }
    }
    assert!(converted > 400, "only {converted} scripts converted");
}

#[test]
fn random_dockerfiles_never_panic() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut accepted = 0;
    for i in 0..4000 {
        // Half start with a valid FROM, so the rules after the parser get random input too.
        let mut text = if i % 2 == 0 {
            "FROM trythis/base:bookworm\n".to_string()
        } else {
            String::new()
        };
        text.push_str(&generate(&mut rng, DOCKERFILE));
        if let Ok(ok) = recipe::validate_dockerfile(&text) {
            accepted += 1;
            assert!(ok.steps > 0, "{text:?}");
            assert!(!ok.base_image.is_empty(), "{text:?}");
        }
    }
    // Some inputs must get past the parser, or the checks above test nothing.
    assert!(accepted >= 30, "only {accepted} Dockerfiles accepted");
}
