//! The `parapet` command: serve | migrate | schema | token.

fn main() {
    print!("{}", parapet::graphql::sdl());
}
