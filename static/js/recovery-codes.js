// The "Copy the codes" button on the recovery codes page: it copies the codes already on the page, so they
// are not sent anywhere. Without JavaScript (or a clipboard) the button stays hidden; the page's download
// button and "write them down" work without it.

const codesOn = (list) => Array.from(list.querySelectorAll(".app-recovery-code"), (item) => item.textContent.trim());

export function initRecoveryCodes(doc) {
  const actions = doc.getElementById("recovery-code-actions");
  const list = doc.getElementById("recovery-codes");
  if (!actions || !list || !navigator.clipboard || !window.isSecureContext) {
    return;
  }
  const status = doc.getElementById("recovery-codes-status");
  doc.getElementById("copy-recovery-codes").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(codesOn(list).join("\n") + "\n");
      status.textContent = "The codes are copied. Paste them somewhere safe, such as a password manager.";
    } catch {
      status.textContent = "Your browser did not let us copy the codes. Select them and copy them, or download them.";
    }
  });
  actions.hidden = false;
}
