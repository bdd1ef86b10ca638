fn main() {
    afl::fuzz!(|data: &[u8]| intuitor_fuzz::tokenizer_gguf(data));
}
