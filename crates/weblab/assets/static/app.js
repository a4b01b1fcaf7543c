// myapp sign-in page script: a static file, cached by the browser.
// It only checks the form before it is sent; the server checks again.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form");
  if (!form) return;
  form.addEventListener("submit", (event) => {
    const email = form.querySelector("input[name=email]");
    const password = form.querySelector("input[name=password]");
    if (!email.value.includes("@") || password.value.length < 8) {
      event.preventDefault();
      alert("Enter an email address and a password of at least 8 characters.");
    }
  });
});
