fn main() {
    afl::fuzz!(|data: &[u8]| intuitor_fuzz::chat_template(data));
}
