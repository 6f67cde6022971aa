// Starts the NHS.UK design system's components (header menu, error summary, details and so on).
import { initAll } from "/static/nhsuk/nhsuk-frontend.min.js";

initAll();
