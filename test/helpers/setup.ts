// Every vitest worker: the real profile's schemas loaded, as lockerd does at start for a config
// that names that profile (config/schema.ts, loadRealProfile), so tests parse real configs directly.
// That the daemon loads them only for such a config is tested in a fresh process
// (test/unit/config/real-profile-lazy.test.ts).
import { loadRealProfile } from "../../src/config/schema.js";

await loadRealProfile();
