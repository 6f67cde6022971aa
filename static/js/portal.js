// Starts the NHS.UK design system's components (header menu, error summary, details and so on), then the
// portal's own few behaviours (each does nothing on a page without its elements).
import { initAll } from "/static/nhsuk/nhsuk-frontend.min.js";
import { initRecoveryCodes } from "/static/js/recovery-codes.js";

initAll();
initRecoveryCodes(document);
