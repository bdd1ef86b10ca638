fn main() {
    afl::fuzz!(|data: &[u8]| intuitor_fuzz::dataset_csv(data));
}
