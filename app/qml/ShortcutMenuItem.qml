import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Circuitscope

// A menu item that shows its action's shortcut at the right, as desktop menus do (Qt Quick
// Controls' own menu items show only the text).
MenuItem {
    id: item
    objectName: "menuItem"
    readonly property string shortcutLabel: item.action && item.action.shortcut !== undefined
                                            ? AppController.shortcutText(item.action.shortcut) : ""
    contentItem: RowLayout {
        spacing: 3 * Theme.spacing
        Label {
            Layout.fillWidth: true
            text: item.text.replace(/&(.)/g, "$1") // mnemonics: the underline is the style's
            color: item.enabled ? Theme.text : Theme.textMuted
            elide: Text.ElideRight
        }
        Label {
            objectName: "menuShortcut"
            visible: text !== ""
            text: item.shortcutLabel
            color: Theme.textMuted
        }
    }
}
