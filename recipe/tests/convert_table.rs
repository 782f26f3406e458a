//! Real-world install snippets, in the style of popular READMEs, and exactly what they become.

mod common;

use common::{assert_lines, convert};

struct Case {
    name: &'static str,
    script: &'static str,
    /// Whole lines that must appear, in this order.
    lines: &'static [&'static str],
    /// Text that must not appear anywhere.
    absent: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "apt install with sudo",
        script: "sudo apt install ripgrep\n",
        lines: &[
            "FROM debian:bookworm",
            "WORKDIR /root",
            "ENV DEBIAN_FRONTEND=noninteractive",
            "RUN apt-get install -y ripgrep",
        ],
        absent: &["sudo"],
    },
    Case {
        name: "apt-get update && install chain keeps its own -y",
        script: "sudo apt-get update && sudo apt-get install -y --no-install-recommends build-essential\n",
        lines: &["RUN apt-get update -y && apt-get install -y --no-install-recommends build-essential"],
        absent: &["-y -y"],
    },
    Case {
        name: "apt-get with backslash continuations",
        script: "sudo apt-get update && sudo apt-get install -y \\\n    libssl-dev \\\n    pkg-config\n",
        lines: &["RUN apt-get update -y && apt-get install -y \\\n    libssl-dev \\\n    pkg-config"],
        absent: &[],
    },
    Case {
        name: "lines ending in && continue without a backslash",
        script: "sudo apt-get update &&\n  sudo apt-get install -y curl &&  # the downloader\n  curl --version\n",
        lines: &[
            "# the downloader",
            "RUN apt-get update -y && \\\n  apt-get install -y curl && \\\n  curl --version",
        ],
        absent: &[],
    },
    Case {
        name: "apt options before the subcommand and apt full-upgrade",
        script: "apt-get -qq update\nsudo apt full-upgrade\napt search jq\n",
        lines: &[
            "ENV DEBIAN_FRONTEND=noninteractive",
            "RUN apt-get -qq update -y",
            "RUN apt-get dist-upgrade -y",
            "RUN apt search jq",
        ],
        absent: &[],
    },
    Case {
        name: "DEBIAN_FRONTEND prefix after sudo",
        script: "sudo DEBIAN_FRONTEND=noninteractive apt-get install -yq tzdata\n",
        lines: &["RUN DEBIAN_FRONTEND=noninteractive apt-get install -yq tzdata"],
        absent: &["-y -yq", "sudo"],
    },
    Case {
        name: "add-apt-repository gets -y",
        script: "sudo apt install software-properties-common\nsudo add-apt-repository ppa:deadsnakes/ppa\nsudo apt update\nsudo apt install python3.12\n",
        lines: &[
            "ENV DEBIAN_FRONTEND=noninteractive",
            "RUN apt-get install -y software-properties-common",
            "RUN add-apt-repository -y ppa:deadsnakes/ppa",
            "RUN apt-get update -y",
            "RUN apt-get install -y python3.12",
        ],
        absent: &[],
    },
    Case {
        name: "pip install --user puts ~/.local/bin on PATH",
        script: "pip3 install --user httpie\n",
        lines: &[
            "ENV PIP_BREAK_SYSTEM_PACKAGES=1",
            "RUN pip3 install --user httpie",
            "ENV PATH=\"/root/.local/bin:$PATH\"",
        ],
        absent: &[],
    },
    Case {
        name: "python -m pip outside a venv",
        script: "python3 -m pip install black\nblack --version\n",
        lines: &[
            "ENV PIP_BREAK_SYSTEM_PACKAGES=1",
            "RUN python3 -m pip install black",
            "RUN black --version",
        ],
        absent: &[],
    },
    Case {
        name: "venv created, activated with source, then pip",
        script: "python3 -m venv ~/venvs/tool\nsource ~/venvs/tool/bin/activate\npip install tool\n",
        lines: &[
            "RUN python3 -m venv ~/venvs/tool",
            "ENV VIRTUAL_ENV=\"/root/venvs/tool\"",
            "ENV PATH=\"/root/venvs/tool/bin:$PATH\"",
            "RUN pip install tool",
        ],
        absent: &["PIP_BREAK_SYSTEM_PACKAGES", "activate"],
    },
    Case {
        name: "venv activated with . inside an && chain",
        script: "git clone https://github.com/psf/requests.git && cd requests\npython3 -m venv .venv && . .venv/bin/activate && pip install -e .\n",
        lines: &[
            "RUN git clone https://github.com/psf/requests.git",
            "WORKDIR /root/requests",
            "RUN python3 -m venv .venv",
            "ENV VIRTUAL_ENV=\"/root/requests/.venv\"",
            "ENV PATH=\"/root/requests/.venv/bin:$PATH\"",
            "RUN pip install -e .",
        ],
        absent: &["PIP_BREAK_SYSTEM_PACKAGES"],
    },
    Case {
        name: "pipx",
        script: "sudo apt install pipx\npipx install poetry\npoetry --version\n",
        lines: &[
            "RUN apt-get install -y pipx",
            "RUN pipx install poetry",
            "ENV PATH=\"/root/.local/bin:$PATH\"",
            "RUN poetry --version",
        ],
        absent: &[],
    },
    Case {
        name: "npm -g with a copied $ prompt",
        script: "$ npm install -g cowsay\n$ cowsay hello\n",
        lines: &["RUN npm install -g cowsay", "RUN cowsay hello"],
        absent: &["$ "],
    },
    Case {
        name: "yarn global",
        script: "npm i -g yarn\nyarn global add serve\n",
        lines: &["RUN npm i -g yarn", "RUN yarn global add serve"],
        absent: &[],
    },
    Case {
        name: "cargo install puts ~/.cargo/bin on PATH once",
        script: "cargo install ripgrep --locked\ncargo install fd-find\n",
        lines: &[
            "RUN cargo install ripgrep --locked",
            "ENV PATH=\"/root/.cargo/bin:$PATH\"",
            "RUN cargo install fd-find",
        ],
        absent: &[],
    },
    Case {
        name: "rustup curl | sh then source ~/.cargo/env",
        script: "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh\nsource $HOME/.cargo/env\ncargo install bat\n",
        lines: &[
            "RUN curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y",
            "ENV PATH=\"/root/.cargo/bin:$PATH\"",
            "RUN cargo install bat",
        ],
        absent: &["cargo/env"],
    },
    Case {
        name: "rustup with its own arguments",
        script: "curl https://sh.rustup.rs -sSf | sh -s -- --default-toolchain stable\n. \"$HOME/.cargo/env\"\n",
        lines: &[
            "RUN curl https://sh.rustup.rs -sSf | sh -s -- --default-toolchain stable -y",
            "ENV PATH=\"/root/.cargo/bin:$PATH\"",
        ],
        absent: &[],
    },
    Case {
        name: "go install",
        script: "go install github.com/charmbracelet/glow@latest\n",
        lines: &[
            "RUN go install github.com/charmbracelet/glow@latest",
            "ENV PATH=\"/root/go/bin:$PATH\"",
        ],
        absent: &[],
    },
    Case {
        name: "go from the tarball with export PATH",
        script: "wget https://go.dev/dl/go1.22.0.linux-amd64.tar.gz\nsudo rm -rf /usr/local/go && sudo tar -C /usr/local -xzf go1.22.0.linux-amd64.tar.gz\nexport PATH=$PATH:/usr/local/go/bin\ngo version\n",
        lines: &[
            "RUN wget https://go.dev/dl/go1.22.0.linux-amd64.tar.gz",
            "RUN rm -rf /usr/local/go && tar -C /usr/local -xzf go1.22.0.linux-amd64.tar.gz",
            "ENV PATH=\"$PATH:/usr/local/go/bin\"",
            "RUN go version",
        ],
        absent: &["sudo"],
    },
    Case {
        name: "gem install",
        script: "sudo gem install lolcat\necho hi | lolcat\n",
        lines: &["RUN gem install lolcat", "RUN echo hi | lolcat"],
        absent: &[],
    },
    Case {
        name: "export several variables with quoting",
        script: "export A=1 B=\"two words\" C='$literal' D=~/data\n",
        lines: &["ENV A=\"1\" B=\"two words\" C='$literal' D=\"/root/data\""],
        absent: &[],
    },
    Case {
        name: "export PATH with $HOME becomes /root",
        script: "export PATH=\"$HOME/.local/bin:$PATH\"\nexport NVM_DIR=\"$HOME/.nvm\"\n",
        lines: &[
            "ENV PATH=\"/root/.local/bin:$PATH\"",
            "ENV NVM_DIR=\"/root/.nvm\"",
        ],
        absent: &[],
    },
    Case {
        name: "a plain variable becomes ARG and is used later",
        script: "VERSION=0.10.0\ncurl -LO https://github.com/x/y/releases/download/v${VERSION}/y-${VERSION}.tar.gz\n",
        lines: &[
            "ARG VERSION=\"0.10.0\"",
            "RUN curl -LO https://github.com/x/y/releases/download/v${VERSION}/y-${VERSION}.tar.gz",
        ],
        absent: &[],
    },
    Case {
        name: "PATH assigned without export is still ENV",
        script: "PATH=$PATH:/opt/tool/bin\n",
        lines: &["ENV PATH=\"$PATH:/opt/tool/bin\""],
        absent: &["ARG"],
    },
    Case {
        name: "cd lines become WORKDIR, relative to the previous one",
        script: "mkdir -p ~/src\ncd ~/src\ngit clone https://github.com/BurntSushi/ripgrep\ncd ripgrep\ncd ..\ncd\n",
        lines: &[
            "RUN mkdir -p ~/src",
            "WORKDIR /root/src",
            "RUN git clone https://github.com/BurntSushi/ripgrep",
            "WORKDIR /root/src/ripgrep",
            "WORKDIR /root/src",
            "WORKDIR /root",
        ],
        absent: &["RUN cd"],
    },
    Case {
        name: "git clone, cd, make install",
        script: "git clone https://github.com/jqlang/jq.git\ncd jq\ngit submodule update --init\nautoreconf -i && ./configure --with-oniguruma=builtin\nmake -j8 && sudo make install\n",
        lines: &[
            "RUN git clone https://github.com/jqlang/jq.git",
            "WORKDIR /root/jq",
            "RUN git submodule update --init",
            "RUN autoreconf -i && ./configure --with-oniguruma=builtin",
            "RUN make -j8 && make install",
        ],
        absent: &[],
    },
    Case {
        name: "cd in the middle of an && chain splits it",
        script: "git clone https://github.com/neovim/neovim && cd neovim && make CMAKE_BUILD_TYPE=Release && sudo make install && cd ..\n",
        lines: &[
            "RUN git clone https://github.com/neovim/neovim",
            "WORKDIR /root/neovim",
            "RUN make CMAKE_BUILD_TYPE=Release && make install",
            "WORKDIR /root",
        ],
        absent: &[],
    },
    Case {
        name: "cd in a subshell or with ; stays inside the RUN",
        script: "(cd build && make)\ncd build; make test\n",
        lines: &["RUN (cd build && make)", "RUN cd build; make test"],
        absent: &["WORKDIR /root/build"],
    },
    Case {
        name: "wget | tar and mv into /usr/local/bin",
        script: "wget -qO- https://github.com/x/y/releases/download/v1.0/y-linux.tar.gz | tar xz\nsudo mv y /usr/local/bin/\n",
        lines: &[
            "RUN wget -qO- https://github.com/x/y/releases/download/v1.0/y-linux.tar.gz | tar xz",
            "RUN mv y /usr/local/bin/",
        ],
        absent: &[],
    },
    Case {
        name: "quoted here-document into a file",
        script: "mkdir -p ~/.config/app\ncat <<'EOF' > ~/.config/app/config.toml\n[paths]\nhome = \"$HOME\"\nEOF\n",
        lines: &[
            "RUN mkdir -p ~/.config/app",
            "RUN printf '%s\\n' \\\n      '[paths]' \\\n      'home = \"$HOME\"' \\\n    > ~/.config/app/config.toml",
        ],
        absent: &["<<"],
    },
    Case {
        name: "unquoted here-document expands variables",
        script: "cat <<EOF >> ~/.bashrc\nexport PATH=\"$HOME/bin:\\$PATH\"\nEOF\n",
        lines: &["RUN printf '%s\\n' \\\n      \"export PATH=\\\"$HOME/bin:\\$PATH\\\"\" \\\n    >> ~/.bashrc"],
        absent: &["<<"],
    },
    Case {
        name: "<<- here-document through sudo tee",
        script: "sudo tee /etc/apt/sources.list.d/example.list <<-EOF\n\tdeb https://example.com/apt stable main\n\tEOF\nsudo apt update\n",
        lines: &[
            "RUN printf '%s\\n' \\\n      \"deb https://example.com/apt stable main\" \\\n    | tee /etc/apt/sources.list.d/example.list",
            "RUN apt-get update -y",
        ],
        absent: &["sudo", "<<"],
    },
    Case {
        name: "sudo removed after &&, ||, ; and |",
        script: "sudo -E make install || sudo -H npm install -g .; echo ok | sudo tee -a /etc/motd\n",
        lines: &["RUN make install || npm install -g .; echo ok | tee -a /etc/motd"],
        absent: &["sudo"],
    },
    Case {
        name: "sudo -u root and sudo sh -c",
        script: "sudo -u root bash -c 'echo hi > /etc/hi'\nsudo sh -c \"echo 1 > /proc/sys/x || true\"\n",
        lines: &[
            "RUN bash -c 'echo hi > /etc/hi'",
            "RUN sh -c \"echo 1 > /proc/sys/x || true\"",
        ],
        absent: &["sudo"],
    },
    Case {
        name: "shebang dropped, set -euo pipefail becomes the build's shell, comments stay in place",
        script: "#!/usr/bin/env bash\nset -euo pipefail\n# Step 1: dependencies\nsudo apt-get install -y git\n\n# Step 2: the tool\ngit clone https://github.com/x/tool\n",
        lines: &[
            "SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-e\", \"-u\", \"-c\"]",
            "WORKDIR /root",
            "# Step 1: dependencies",
            "ENV DEBIAN_FRONTEND=noninteractive",
            "RUN apt-get install -y git",
            "",
            "# Step 2: the tool",
            "RUN git clone https://github.com/x/tool",
        ],
        absent: &["#!", "set -e", "RUN set"],
    },
    Case {
        name: "every step runs under bash -e -o pipefail, so a failing pipeline stage fails it",
        script: "curl -fsSL https://example.com/install.sh | sh\n",
        lines: &[
            "FROM debian:bookworm",
            "SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-e\", \"-c\"]",
            "RUN curl -fsSL https://example.com/install.sh | sh",
        ],
        absent: &[],
    },
    Case {
        name: "an Alpine base gets sh with pipefail",
        script: "# trythis: base=alpine:3.20\napk add jq\n",
        lines: &[
            "FROM alpine:3.20",
            "SHELL [\"/bin/sh\", \"-o\", \"pipefail\", \"-e\", \"-c\"]",
            "RUN apk add jq",
        ],
        absent: &["bash"],
    },
    Case {
        name: "a script ending in exit 1 fails the build there",
        script: "make install\nexit 1\n",
        lines: &["RUN make install", "RUN exit 1"],
        absent: &[],
    },
    Case {
        name: "set +e and set +o pipefail carry over to every later step; set -e restores",
        script: "make\nset +e\nmake test\nrun-tests &\nset -e +o pipefail\nls | head -1\n",
        lines: &[
            "RUN make",
            "RUN set +e; make test || true",
            "RUN set +e; run-tests & true",
            "RUN set +o pipefail; ls | head -1",
        ],
        absent: &["RUN set +e; set +o pipefail"],
    },
    Case {
        name: "functions reach later steps through BASH_ENV",
        script: "greet() {\n  echo \"hi $1\"\n}\ngreet you\n",
        lines: &[
            "RUN printf '%s\\n' \\",
            "      'greet() {' \\",
            "      '  echo \"hi $1\"' \\",
            "      '}' \\",
            "    >> /etc/trythis-functions.sh",
            "ENV BASH_ENV=/etc/trythis-functions.sh",
            "RUN greet you",
        ],
        absent: &["eval"],
    },
    Case {
        name: "backslash continuations are preserved",
        script: "./configure \\\n  --prefix=/usr/local \\\n  --enable-shared\nmake\n",
        lines: &["RUN ./configure \\\n  --prefix=/usr/local \\\n  --enable-shared", "RUN make"],
        absent: &[],
    },
    Case {
        name: "base and workdir directives",
        script: "# trythis: base=python:3.12-slim\n# trythis: workdir=/opt/app\ncd src\npip install .\n",
        lines: &[
            "FROM python:3.12-slim",
            "WORKDIR /opt/app",
            "WORKDIR /opt/app/src",
            "RUN pip install .",
        ],
        absent: &["trythis:"],
    },
    Case {
        name: "echo >> ~/.bashrc is kept for the visitor's shell",
        script: "curl -sS https://starship.rs/install.sh | sh -s -- -y\necho 'eval \"$(starship init bash)\"' >> ~/.bashrc\n",
        lines: &[
            "RUN curl -sS https://starship.rs/install.sh | sh -s -- -y",
            "RUN echo 'eval \"$(starship init bash)\"' >> ~/.bashrc",
        ],
        absent: &[],
    },
    Case {
        name: "nvm installer, then source ~/.bashrc is dropped",
        script: "curl -o- https://raw.githubusercontent.com/nvm-sh/nvm/v0.39.7/install.sh | bash\nsource ~/.bashrc\n",
        lines: &["RUN curl -o- https://raw.githubusercontent.com/nvm-sh/nvm/v0.39.7/install.sh | bash"],
        absent: &["bashrc"],
    },
    Case {
        name: "nodesource setup piped to sudo -E bash -",
        script: "curl -fsSL https://deb.nodesource.com/setup_20.x | sudo -E bash -\nsudo apt-get install -y nodejs\n",
        lines: &[
            "RUN curl -fsSL https://deb.nodesource.com/setup_20.x | bash -",
            "ENV DEBIAN_FRONTEND=noninteractive",
            "RUN apt-get install -y nodejs",
        ],
        absent: &["sudo"],
    },
    Case {
        name: "one-line for loop with sudo inside",
        script: "for p in git curl; do sudo apt-get install -y $p; done\n",
        lines: &["RUN for p in git curl; do apt-get install -y $p; done"],
        absent: &["sudo"],
    },
    Case {
        name: "multi-line if block runs through eval",
        script: "if ! command -v make >/dev/null; then\n  sudo apt-get install -y make\nfi\n",
        lines: &["RUN eval \"$(printf '%s\\n' \\\n      'if ! command -v make >/dev/null; then' \\\n      '  apt-get install -y make' \\\n      'fi' \\\n    )\""],
        absent: &["sudo"],
    },
    Case {
        name: "sudo su - and a final exit 0 are dropped",
        script: "sudo su -\napt-get update\nexit 0\n",
        lines: &["RUN apt-get update -y"],
        absent: &["su -", "exit"],
    },
    Case {
        name: "make, then reboot is dropped",
        script: "make install\nsudo reboot\n",
        lines: &["RUN make install"],
        absent: &["reboot"],
    },
    Case {
        name: "export of a known variable",
        script: "JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64\nexport JAVA_HOME\n",
        lines: &[
            "ARG JAVA_HOME=\"/usr/lib/jvm/java-17-openjdk-amd64\"",
            "ENV JAVA_HOME=\"${JAVA_HOME}\"",
        ],
        absent: &[],
    },
];

#[test]
fn real_world_snippets_convert_to_exact_lines() {
    assert!(CASES.len() >= 35, "{} cases", CASES.len());
    for case in CASES {
        let converted = convert(case.script);
        let dockerfile = &converted.dockerfile;
        assert!(
            dockerfile.starts_with(
                "# Generated by trythis from an install script; edit freely before building.\nFROM "
            ),
            "{}: header\n{dockerfile}",
            case.name
        );
        assert_lines(dockerfile, case.lines);
        for absent in case.absent {
            assert!(
                !dockerfile.contains(absent),
                "{}: {absent:?} should not be in\n{dockerfile}",
                case.name
            );
        }
    }
}

#[test]
fn env_lines_are_not_repeated() {
    let converted = convert(
        "curl https://sh.rustup.rs -sSf | sh\nsource ~/.cargo/env\ncargo install a\nexport PATH=$HOME/.cargo/bin:$PATH\nsudo apt install b\nsudo apt install c\n",
    );
    let count = |needle: &str| converted.dockerfile.matches(needle).count();
    assert_eq!(
        count("ENV PATH=\"/root/.cargo/bin:$PATH\""),
        2,
        "{}",
        converted.dockerfile
    );
    assert_eq!(count("ENV DEBIAN_FRONTEND=noninteractive"), 1);
}

#[test]
fn whole_output_of_a_typical_readme() {
    let converted = convert(
        "#!/bin/bash\nset -e\n# Install\nsudo apt update && sudo apt install -y git make\ngit clone https://github.com/example/tool.git && cd tool\nmake && sudo make install\nexport TOOL_HOME=\"$HOME/.tool\"\n",
    );
    assert_eq!(
        converted.dockerfile,
        "# Generated by trythis from an install script; edit freely before building.
FROM debian:bookworm
SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-e\", \"-c\"]
WORKDIR /root
# Install
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -y && apt-get install -y git make
RUN git clone https://github.com/example/tool.git
WORKDIR /root/tool
RUN make && make install
ENV TOOL_HOME=\"/root/.tool\"
"
    );
    assert_eq!(converted.base_image, "debian:bookworm");
    assert_eq!(
        converted.notes,
        vec![recipe::Problem {
            line: Some(2),
            message: "set -e dropped: every step already runs under bash -e -o pipefail, which stops at the first failing command".into(),
        }]
    );
}

#[test]
fn notes_explain_changes_with_lines() {
    let converted = convert(
        "curl -fsSL https://example.com/install.sh | sh\nsource ~/.bashrc\nsystemctl enable --now foo\nexport EDITOR\nexit 0\n",
    );
    let notes: Vec<String> = converted.notes.iter().map(ToString::to_string).collect();
    assert_eq!(
        notes,
        [
            "line 1: this downloads a script and runs it: the build needs network access",
            "line 2: source ~/.bashrc dropped: the visitor's shell reads ~/.bashrc itself, and later build steps do not see what it sets (use export for that)",
            "line 3: systemctl needs an init system, which a build (and a sandbox) does not have; this step will probably fail",
            "line 4: export EDITOR without a value was dropped: EDITOR is not set earlier in the script",
            "line 5: exit at the end of the script was dropped",
        ]
    );
}

#[test]
fn computed_values_are_kept_for_later_steps_through_bash_env() {
    let converted = convert("ARCH=$(uname -m)\nexport TAG=`date +%F`\necho \"$ARCH $TAG\"\n");
    assert_lines(
        &converted.dockerfile,
        &[
            "RUN ARCH=$(uname -m); printf '%s=%q\\n' ARCH \"$ARCH\" >> /etc/trythis-functions.sh",
            "ENV BASH_ENV=/etc/trythis-functions.sh",
            "RUN TAG=`date +%F`; printf 'export %s=%q\\n' TAG \"$TAG\" >> /etc/trythis-functions.sh",
            "RUN echo \"$ARCH $TAG\"",
        ],
    );
    assert_eq!(converted.notes.len(), 2);
    assert_eq!(converted.notes[0].line, Some(1));
    assert!(converted.notes[0]
        .message
        .starts_with("ARCH is computed by a command"));
    // Under sh (Alpine), there is no BASH_ENV: the value stays in its step, with a note.
    let alpine = convert("# trythis: base=alpine:3.20\nARCH=$(uname -m)\n");
    assert_lines(&alpine.dockerfile, &["RUN ARCH=$(uname -m)"]);
}
