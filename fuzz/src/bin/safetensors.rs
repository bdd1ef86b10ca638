fn main() {
    afl::fuzz_nohook!(|data: &[u8]| intuitor_fuzz::safetensors(data));
}
