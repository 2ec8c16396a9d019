from tests.test_browser import site, browser, shots, login  # noqa
def test_debug(site, browser, shots):
    visit = login(browser, site, "root", shots)
    page = visit.page
    page.set_viewport_size({"width": 390, "height": 844})
    print(page.evaluate("""() => { const out=[]; let n=document.querySelector('#citadel-ask-row');
      for (; n; n=n.parentElement) { const cs=getComputedStyle(n); out.push((n.id||n.className||n.tagName).toString().slice(0,40)+' '+cs.overflow+' '+cs.position+' '+cs.display); } return out; }"""))
    page.get_by_role("tab", name="Administration").click()
    page.wait_for_timeout(1500)
    print(page.evaluate("""() => [...document.querySelectorAll('th[scope=col]')].slice(0,3).map(th => { const cs=getComputedStyle(th); let b=th; while (b && getComputedStyle(b).backgroundColor.match(/rgba\\(.*, 0\\)$|transparent/)) b=b.parentElement; return [th.closest('[id]').id, cs.color, getComputedStyle(b).backgroundColor, b.className.slice(0,40)]; })"""))
